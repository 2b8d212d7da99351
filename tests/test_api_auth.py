"""API keys: required beyond loopback (0.0.0.0, share, Spaces), refused start without one, 401 objects."""
from types import SimpleNamespace

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from api.auth import ApiKeyRequired, KeyPolicy, is_loopback, key_policy
from api.errors import ApiError
from tests.conftest import AppServer

KEY = "test-key-3f9a0c"


def cfg(host="127.0.0.1", share=False):
    return SimpleNamespace(server=SimpleNamespace(host=host, share=share, api_key_env="APP_API_KEY"))


def test_loopback_names():
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com", ""))


@pytest.mark.parametrize("config,env,why", [
    (cfg(host="0.0.0.0"), {}, "listening on 0.0.0.0"),
    (cfg(share=True), {}, "share link"),
    (cfg(), {"SPACE_ID": "me/chat"}, "Space me/chat"),
    (cfg(), {"GRADIO_SERVER_NAME": "0.0.0.0"}, "listening on 0.0.0.0"),
])
def test_public_without_a_key_refuses_with_one_line(config, env, why):
    with pytest.raises(ApiKeyRequired) as info:
        key_policy(config, environ=env)
    message = str(info.value)
    assert why in message and "APP_API_KEY is not set" in message and "\n" not in message
    policy = key_policy(config, environ=env | {"APP_API_KEY": KEY})
    assert policy.public and policy.key == KEY


def test_loopback_needs_a_key_only_when_one_is_set():
    assert key_policy(cfg(), environ={}).key is None
    assert key_policy(cfg(), environ={"APP_API_KEY": "  "}).key is None  # blank is unset
    assert key_policy(cfg(), environ={"APP_API_KEY": KEY}).key == KEY
    assert key_policy(cfg(host="0.0.0.0"), host="127.0.0.1", environ={}).public is False  # the real host wins


def request(client_host: str, auth: str | None = None):
    headers = {"authorization": auth} if auth else {}
    return SimpleNamespace(client=SimpleNamespace(host=client_host), headers=headers)


def test_key_checks():
    open_policy = KeyPolicy(key=None, public=False, why="", env_name="APP_API_KEY")
    open_policy.check(request("127.0.0.1"))
    with pytest.raises(ApiError, match="set APP_API_KEY"):  # a keyless server answers only this machine
        open_policy.check(request("10.0.0.7"))
    keyed = KeyPolicy(key=KEY, public=True, why="x", env_name="APP_API_KEY")
    keyed.check(request("10.0.0.7", f"Bearer {KEY}"))
    for bad in (None, KEY, f"Basic {KEY}", "Bearer wrong", "Bearer "):
        with pytest.raises(ApiError) as info:
            keyed.check(request("127.0.0.1", bad))
        assert info.value.status == 401


@pytest.fixture(scope="module")
def public_server(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("public"), config={"server": {"host": "0.0.0.0"}},
                    env={"APP_API_KEY": KEY}).start()
    yield srv
    srv.stop()


def test_public_server_requires_the_key(public_server):
    url = public_server.url
    r = httpx.get(url + "/v1/models", timeout=10)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "invalid_api_key" and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(url + "/v1/chat/completions", headers={"Authorization": "Bearer wrong"},
                   json={"model": "local-chat", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["message"] == "incorrect API key"
    r = httpx.post(url + "/v1/audio/speech", json={"input": "hi"}, timeout=10)
    assert r.status_code == 401
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    good = OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in good.models.list().data] == ["demo:tiny", "local-chat"]
    reply = good.chat.completions.create(model="local-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert reply.usage.completion_tokens == 3
    health = httpx.get(url + "/health", timeout=10).json()  # health stays open (it holds no secrets)
    assert health["api"] == {**health["api"], "key_required": True, "public": True}


def test_the_app_refuses_to_start_beyond_loopback_without_a_key(tmp_path):
    srv = AppServer(tmp_path, config={"server": {"host": "0.0.0.0"}}, env={"APP_API_KEY": ""})
    try:
        with pytest.raises(RuntimeError, match="app exited"):
            srv.start(timeout=120)
        assert "APP_API_KEY is not set" in srv.log()
    finally:
        srv.stop()


# ---- one rule for exposure, over real HTTP from another address -------------------------------------------

def lan_address() -> str:
    """This machine's own non-loopback IPv4 address: a request to it arrives from it, so the server
    sees a client that is not loopback (as a LAN neighbour would be), with no forged header."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it only picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            address = ""
    if not address or is_loopback(address):
        pytest.skip("this machine has no non-loopback address to play a LAN client from")
    return address


def fn_index(url: str, elem_id: str, event: str = "click") -> int:
    """The queue index of the UI event `event` on the component with `elem_id` (as a browser would send it)."""
    config = httpx.get(url + "/config", timeout=10).json()
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    for i, dep in enumerate(config["dependencies"]):
        if any(t[0] in ids and t[1] == event for t in dep["targets"]):
            return dep.get("id", i)
    raise AssertionError(f"no {event} event on #{elem_id}")


def queue_event(url: str, index: int, data: list, headers: dict | None = None) -> tuple[int, dict]:
    """One UI event over Gradio's queue, as the page sends it: (status of the join, the last message)."""
    import json
    import secrets as _secrets

    session = _secrets.token_hex(8)
    r = httpx.post(url + "/gradio_api/queue/join", headers=headers, timeout=30,
                   json={"fn_index": index, "data": data, "session_hash": session, "event_data": None})
    if r.status_code != 200:
        return r.status_code, r.json()
    with httpx.stream("GET", url + f"/gradio_api/queue/data?session_hash={session}", headers=headers,
                      timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return 200, message
    raise AssertionError("the queue stream ended without a result")


@pytest.fixture(scope="module")
def lan_url(public_server):
    return f"http://{lan_address()}:{public_server.port}"


def test_a_lan_client_without_the_key_reaches_nothing_that_generates_reads_or_writes(public_server, lan_url):
    """Issue 13 item 1: with APP_API_KEY and no login, the key guarded only /v1."""
    config_before = public_server.config_path.read_bytes()
    save = fn_index(lan_url, "models-precision-save")
    doors = [("POST", "/gradio_api/call/chat", {"data": ["hi", "", "", "", None, None, ""]}),
             ("POST", "/gradio_api/call/speak", {"data": ["hi", "auto"]}),
             ("POST", "/gradio_api/run/list_sessions", {"data": ["x" * 32, "", 50]}),
             ("POST", "/gradio_api/queue/join", {"fn_index": save, "data": ["4bit"], "session_hash": "s1"}),
             ("GET", "/gradio_api/queue/data?session_hash=s1", None),
             ("POST", "/gradio_api/upload", None),
             ("GET", f"/gradio_api/file={public_server.config_path}", None)]
    for method, path, body in doors:
        r = httpx.request(method, lan_url + path, json=body, timeout=30)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert r.json()["error"]["code"] == "invalid_api_key" and "Authorization: Bearer" in r.json()["error"]["message"]
    assert public_server.config_path.read_bytes() == config_before
    assert httpx.get(lan_url + "/", timeout=30).status_code == 200  # the page shell itself holds nothing
    assert httpx.get(lan_url + "/v1/models", timeout=30).status_code == 401


def test_the_key_opens_the_gradio_api_and_settings_still_need_a_login(public_server, lan_url):
    from gradio_client import Client

    bearer = {"Authorization": f"Bearer {KEY}"}
    reply = Client(lan_url, headers=bearer, verbose=False).predict("hi", max_new_tokens=4, api_name="/chat")
    assert isinstance(reply, str)
    config_before = public_server.config_path.read_bytes()
    save = fn_index(lan_url, "models-precision-save")
    for url, headers in ((lan_url, bearer), (public_server.url, None)):  # the key holder, and this machine
        status, message = queue_event(url, save, ["4bit"], headers)
        assert status == 200 and message["success"] is False, message
        error = message["output"]["error"]
        assert "settings and models cannot be changed here" in error and "login" in error
        assert str(public_server.tmp) not in error and "config.json" not in error
    assert public_server.config_path.read_bytes() == config_before


def test_this_machine_needs_no_key_on_a_lan_host(public_server):
    """The operator's own browser (loopback) keeps working on a server that listens on 0.0.0.0."""
    r = httpx.post(public_server.url + "/gradio_api/call/chat", json={"data": ["hi", "", "", "", None, None, ""]},
                   timeout=30)
    assert r.status_code == 200 and r.json()["event_id"]


def test_policy_rules():
    lan = key_policy(cfg(host="0.0.0.0"), environ={"APP_API_KEY": KEY})
    assert lan.guards_gradio("/gradio_api/queue/join") and lan.guards_gradio("/gradio_api/file=/etc/passwd")
    assert not lan.guards_gradio("/") and not lan.guards_gradio("/assets/index.js")
    assert lan.settings_locked and lan.trust_local
    logged_in = key_policy(cfg(host="0.0.0.0"), environ={"APP_API_KEY": KEY}, login=True)
    assert not logged_in.guards_gradio("/gradio_api/queue/join") and not logged_in.settings_locked  # Gradio's login
    space = key_policy(cfg(), environ={"APP_API_KEY": KEY, "SPACE_ID": "me/chat"})
    assert space.settings_locked and not space.trust_local  # behind the Space proxy every client looks local
    assert not key_policy(cfg(), environ={}).settings_locked
