"""Login (APP_USERS) with --share: owners are login names; offline, the share link fails and the app keeps serving."""
from __future__ import annotations

import httpx
import pytest
from gradio_client import Client

from tests.browser import pages
from tests.conftest import AppServer
from tests.waiting import wait_for

USERS = "alice:wonderland,민수:비밀번호123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("auth"), config={"generation": {"max_new_tokens": 8}},
                    args=("--demo", "--share"), env={"APP_USERS": USERS, "HF_HUB_OFFLINE": "1", "APP_API_KEY": "k" * 40}).start()
    yield srv
    srv.stop()


def test_share_link_failure_is_a_warning_and_the_app_keeps_serving(server):
    wait_for(lambda: "[share]" in server.log(), "the [share] line in the server log", stall=90)
    log = server.log()
    assert "[auth] login required (2 user(s))" in log
    assert "[share] could not open a share link" in log or "[share] public link: https://" in log
    assert httpx.get(server.url + "/health").status_code == 200


def test_api_needs_login_and_owners_are_login_names(server):
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError, match="credentials were not provided"):  # Gradio's login, not a crash
        Client(server.url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):  # Gradio answers a wrong password with 400
        Client(server.url, auth=("alice", "wrong"), verbose=False)
    alice = Client(server.url, auth=("alice", "wonderland"), verbose=False)
    minsu = Client(server.url, auth=("민수", "비밀번호123"), verbose=False)
    session = alice.predict("alice's plans", api_name="/new_session")
    # a token that names someone else is ignored: the owner is the logged-in user
    assert minsu.predict(owner_token="x" * 32, api_name="/list_sessions") == []
    with pytest.raises(Exception, match="no longer exists"):
        minsu.predict(session["id"], api_name="/get_session")
    assert [s["id"] for s in alice.predict(api_name="/list_sessions")] == [session["id"]]


def test_browser_login_then_chat(server, new_context):
    page = new_context().new_page()
    page.goto(server.url, wait_until="load")
    page.fill("input[type=text], input[name=username]", "alice")
    page.fill("input[type=password]", "wonderland")
    page.keyboard.press("Enter")
    pages.wait_ready(page)
    assert page.locator("#owner-key").count() == 0  # no anonymous key with login
    assert pages.session_labels(page) == ["alice's plans"]  # her newest chat (made over the API) is open
    pages.send(page, "Hello from alice")
    pages.wait_replies_done(page, 1)
    client = Client(server.url, auth=("alice", "wonderland"), verbose=False)
    stored = client.predict(client.predict(api_name="/list_sessions")[0]["id"], api_name="/get_session")
    assert [m["content"] for m in stored["messages"]][:1] == ["Hello from alice"]
