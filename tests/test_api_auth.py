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
