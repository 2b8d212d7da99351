"""Overload is answered at once: a request that would wait longer than server.max_wait_s gets 503 with an
honest Retry-After instead of waiting until the client gives up (engine/serving/admission.py)."""
from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from openai import OpenAI

from engine.serving.admission import WaitEstimator
from tests.conftest import AppServer
from tests.waiting import wait_for

HI = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_expected_wait_is_the_measured_pace_times_the_queue_ahead():
    clock = Clock()
    est = WaitEstimator(max_wait_s=10, clock=clock)
    assert est.judge(waiting=30, full=True).admit            # nothing measured yet: nothing refused on a guess
    est.became_full()
    for _ in range(5):                                       # a finish every 4 s while full
        clock.now += 4
        est.finished(still_full=True)
    assert est.seconds_per_finish == pytest.approx(4)
    assert est.judge(waiting=1, full=True).admit             # 2 x 4 s = 8 s <= 10 s
    refused = est.judge(waiting=4, full=True)                # 5 x 4 s = 20 s: refused, retry when 10 s is left
    assert not refused.admit and refused.expected_wait_s == pytest.approx(20) and refused.retry_after_s == 10
    assert est.judge(waiting=4, full=False).admit            # a free slot: no wait at all
    clock.now += 100
    est.finished(still_full=False, drained=True)             # the burst is over: its pace is forgotten
    assert est.seconds_per_finish is None and est.judge(waiting=50, full=True).admit


class HeldStream:
    """A long streaming reply, read until text flows, then held open; `drop()` is the client leaving."""

    def __init__(self, url: str, http: httpx.Client):
        self._ctx = http.stream("POST", url + "/v1/chat/completions", json={
            "model": "local-chat", "messages": HI, "max_tokens": 4000, "min_tokens": 4000, "stream": True,
            "temperature": 1.0})   # min_tokens: an end token cannot finish it early (a random model does emit one)
        response = self._ctx.__enter__()
        assert response.status_code == 200
        self._lines = response.iter_lines()
        next(line for line in self._lines if '"content"' in line and '"role"' not in line)

    def drop(self) -> None:
        self._ctx.__exit__(None, None, None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("admission"), config={
        "engine": {"max_concurrent": 1}, "server": {"queue_size": 8, "max_wait_s": 0.5}}).start()
    yield srv
    srv.stop()


def health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


def test_a_request_that_would_wait_too_long_is_refused_at_once_with_retry_after(server):
    client = OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=60)
    with httpx.Client(timeout=120) as http, httpx.Client(timeout=120) as http2:
        first = HeldStream(server.url, http)            # the one slot
        held: dict = {}
        t = threading.Thread(target=lambda: held.update(second=HeldStream(server.url, http2)))
        t.start()
        try:
            # Nothing measured yet: the second request waits instead of being refused on a guess.
            wait_for(lambda: health(server)["queue_depth"] == 1, "the second request to queue", stall=60)
            time.sleep(1.5)                              # the slot is held 1.5 s or more...
            first.drop()                                 # ...then passes to the waiting one: pace >= 1.5 s a request
            t.join(120)
            assert "second" in held, "the queued request never got the slot"
            h = health(server)
            assert h["queue"]["expected_wait_s"] >= 1.5 and h["queue"]["max_wait_s"] == 0.5, h["queue"]
            with pytest.raises(openai.InternalServerError) as refused:
                client.chat.completions.create(model="local-chat", messages=HI, max_tokens=2)
            err = refused.value
            assert err.status_code == 503 and err.body["code"] == "server_busy"
            assert "would wait about" in err.body["message"]
            assert int(err.response.headers["Retry-After"]) >= 1
            r = http.post(server.url + "/v1/chat/completions", json={"model": "local-chat", "messages": HI,
                                                                       "max_tokens": 2, "stream": True})
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1   # streaming asks get it too
            assert health(server)["active_requests"] == 1     # refused at once, while the second still runs
        finally:
            first.drop()
            t.join(120)
            if "second" in held:
                held["second"].drop()
    wait_for(lambda: health(server)["active_requests"] == 0, "the slot to be free", stall=60)
    reply = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=2)
    assert reply.choices[0].message.content is not None   # idle again: the pace is forgotten, requests run
