"""Tuning tab and adapter choice, at the handler level with the real tiny engine and a real training
subprocess: train from the tab, watch the loss arrive, pick the adapter in a chat, see a different
greedy reply recorded with the adapter's provenance; bad lines by number; cancel; one run at a time."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from config import config_from_dict
from tuning.jobs import TrainingJob
from ui.chat import BASE, ChatHandlers
from ui.conversation import Conversation
from ui.models import adapters_markdown
from ui.owners import Owners
from ui.page import Shared
from ui.services import Services
from ui.tuning import SAMPLE, TrainingSlot, TuningHandlers

from tests.waiting import combined, file_size, process_work, wait_for

TOKEN = "a" * 32
OWNER = "anon:" + TOKEN


def request(lang: str = "en", page: str = "page-1") -> SimpleNamespace:
    return SimpleNamespace(headers={"accept-language": "ko-KR" if lang == "ko" else "en-US"}, session_hash=page,
                           username=None)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    from engine.chat import ChatEngine
    from engine.loading.sources import resolve_source
    from sessions import SessionStore

    tmp = tmp_path_factory.mktemp("tuning-ui")
    cfg = config_from_dict({"engine": {"adapters_dir": str(tmp / "adapters")},
                            "sessions": {"path": str(tmp / "sessions")}, "server": {"max_upload_mb": 1},
                            "generation": {"temperature": 0.0, "max_new_tokens": 16}})
    engine = ChatEngine.from_source(resolve_source("demo:tiny"), cfg.engine)
    assert engine.adapters is not None, "ChatEngine.adapters: the local engine has an AdapterRegistry"
    services = Services(cfg, engine, SessionStore(cfg.sessions.path))
    yield Shared(services, Owners(auth=False), Conversation(services), "s" * 32)
    engine.close()


@pytest.fixture(scope="module")
def tuning(shared):
    return TuningHandlers(shared, TrainingSlot())


def job_moves(job: TrainingJob):
    """Progress of a training subprocess: its log, its CPU time, its step."""
    return combined(file_size(job.log_path), process_work(job.process.pid), lambda: job.status().step)


def finished(h: TuningHandlers, job: TrainingJob, key: str, stall: float = 120) -> list:
    """Tick like the page's timer until the timer turns itself off; every tick's outputs."""
    ticks = []

    def timer_off() -> bool:
        ticks.append(h.tick(job, key, request()))
        return ticks[-1][4].active is False

    wait_for(timer_off, "training to finish (the tab's timer to turn off)", progress=job_moves(job), stall=stall,
             poll=0.25, detail=lambda: f"{job.status()}\n{job.log_tail()}")
    return ticks


def chat_reply(chat: ChatHandlers, session_id: str) -> dict:
    for _ in chat.reply(TOKEN, session_id, request()):
        pass
    return chat.shared.services.store.get(OWNER, session_id)["messages"][-1]


@pytest.fixture(scope="module")
def trained(shared, tuning):
    """A 16-step demo LoRA on the sample, started from the tab's Start handler; (name, ticks)."""
    out = tuning.start(None, "lora", "ui-lora", 16, False, request())
    job, key = out[0], out[1]
    assert isinstance(job, TrainingJob) and out[6].active is True and out[8].interactive is True
    assert "36 good conversation(s), 0 bad line(s)" in out[2]
    assert Path(job.config.dataset) == SAMPLE and job.config.max_steps == 16
    ticks = finished(tuning, job, key)
    return "ui-lora", ticks, job


def test_training_from_the_tab_streams_loss_and_publishes_the_adapter(shared, trained):
    name, ticks, job = trained
    status = job.status()
    assert status.state == "succeeded", (status, job.log_tail())
    final = ticks[-1]
    assert "Done" in final[1] and "step 16 / 16" in final[1] and name in final[1]
    assert f"{job.status().examples} examples" in final[1] and job.status().examples > 0
    assert any("s per step" in t[1] for t in ticks), [t[1] for t in ticks]    # the pace while it trains
    frame = final[2]
    train_steps = sorted(frame[frame.series == "train"].step.tolist())
    assert train_steps == list(range(1, 17)), train_steps      # logging every step for a short run
    assert (frame.series == "eval").any()
    assert final[5].interactive is True and final[6].interactive is False   # Start back on, Cancel off
    # the plot filled while the run was going, not only at the end
    live = [t for t in ticks[:-1] if t[2] is not None and "Done" not in t[1]]
    assert live, "no metrics were shown before the run ended"
    assert [a.name for a in shared.services.adapter_choices()] == [name]
    table = adapters_markdown(shared.services, "en")
    assert f"`{name}`" in table and "✅ yes" in table and "lora r=8" in table


def test_the_status_names_each_phase_in_both_languages():
    """Within seconds of Start the line says what the run is doing, not a bare "step 0 / 40" (issue 24)."""
    from tuning.jobs import JobStatus
    from ui.tuning import status_markdown

    def line(state: str, lang: str = "en", **progress) -> str:
        return status_markdown("run", JobStatus.of(state, progress), [], lang, 3.0)

    assert "Starting (loading the training libraries)" in line("starting")
    assert "Tokenizing the examples" in line("tokenizing") and "토큰화" in line("tokenizing", "ko")
    loading = line("loading", examples=32)
    assert "Loading the base model" in loading and "32 examples" in loading and "step" not in loading
    training = line("training", step=6, max_steps=40, resumed_from=2, step_seconds=10.0, examples=32)
    assert "step 6 / 40 (15 %)" in training and "2.5 s per step" in training, training
    assert "스텝당 2.5초" in line("training", "ko", step=6, max_steps=40, resumed_from=2, step_seconds=10.0)
    assert "per step" not in line("training", step=0, max_steps=40, step_seconds=4.0)   # no step ended yet


def test_the_adapter_is_chosen_per_chat_and_changes_the_greedy_reply(shared, trained):
    name = trained[0]
    chat = ChatHandlers(shared)
    dropdown = chat.adapter_refresh(BASE, request())
    assert [v for _, v in dropdown.choices] == [BASE, name]
    assert dropdown.choices[0][0] == "(base model)"
    assert chat.adapter_refresh(BASE, request("ko")).choices[0][0] == "(기본 모델)"

    out = chat.send(request(), {"text": "안녕하세요, 자기소개 해 주세요.", "files": []}, TOKEN, "", None, False, BASE,
                    "", 0.0, 16, 1.0, 20)
    session_id = out[6]     # box, editing, cancel_edit, typing, stop, chatbot, session_id, ...
    base = chat_reply(chat, session_id)
    assert base["provenance"]["adapter"] is None and base["content"]

    version = chat.save_adapter(TOKEN, session_id, name, request())
    stored = shared.services.store.get(OWNER, session_id)
    assert stored["settings"]["adapter"] == name and stored["version"] == version
    assert chat.adapter_view(TOKEN, session_id, request()).value == name      # a reopened chat shows its adapter

    for _ in chat.retry(request(), TOKEN, session_id, version, name, "", 0.0, 16, 1.0, 20):
        pass
    tuned = shared.services.store.get(OWNER, session_id)["messages"][-1]
    info = shared.services.check_adapter(name)
    prov = tuned["provenance"]
    assert prov["adapter"] == name and prov["adapter_fingerprint"] == info.meta["run_id"]
    assert prov["adapter_base_fingerprint"] == info.meta["base_fingerprint"] == shared.services.adapters.fingerprint
    assert prov["sampling"]["temperature"] == 0.0
    assert tuned["content"] != base["content"], "the adapter did not change the greedy reply"

    left, right = list(chat.compare(TOKEN, session_id, name, request()))[-1]
    assert left == base["content"] and right == tuned["content"]

    # back to the base: removed from the chat's settings, and the reply is the base one again
    chat.save_adapter(TOKEN, session_id, BASE, request())
    assert "adapter" not in shared.services.store.get(OWNER, session_id)["settings"]


def test_unusable_adapters_are_refused_with_their_reason(shared, trained, tmp_path):
    chat = ChatHandlers(shared)
    out = chat.send(request(), {"text": "hi", "files": []}, TOKEN, "", None, False, BASE, "", 0.0, 4, 1.0, 20)
    session_id = out[6]
    chat_reply(chat, session_id)    # as on the page, the reply follows (till it ends, Compare is refused)
    with pytest.raises(gr.Error, match="no adapter named 'nope'"):
        chat.save_adapter(TOKEN, session_id, "nope", request())
    with pytest.raises(gr.Error, match="not allowed"):
        chat.save_adapter(TOKEN, session_id, "../etc", request())
    with pytest.raises(gr.Error, match="Choose an adapter first"):
        list(chat.compare(TOKEN, session_id, BASE, request()))
    # an adapter trained on another base: listed as unusable in Models, refused in a chat
    other = Path(shared.services.cfg.engine.adapters_dir) / "other-base"
    other.mkdir()
    for f in ("adapter_model.safetensors", "adapter_config.json"):
        (other / f).write_bytes((other.parent / trained[0] / f).read_bytes())
    meta = json.loads((other.parent / trained[0] / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps(meta | {"name": "other-base", "base_fingerprint": "sha256:0"}))
    try:
        assert "❌" in adapters_markdown(shared.services, "en")
        assert "other-base" not in [v for _, v in chat.adapter_refresh(BASE, request()).choices]
        with pytest.raises(gr.Error, match="was trained on"):
            chat.save_adapter(TOKEN, session_id, "other-base", request())
    finally:
        for f in other.iterdir():
            f.unlink()
        other.rmdir()


def test_bad_lines_are_shown_by_number_and_nothing_starts(shared, tuning, tmp_path):
    good = {"messages": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "네, 안녕하세요."}]}
    path = tmp_path / "내 데이터.jsonl"
    path.write_text("\n".join([json.dumps(good, ensure_ascii=False), "not json",
                               json.dumps({"messages": []}),
                               json.dumps({"messages": [{"role": "assistant", "content": "x"}]}),
                               json.dumps(good, ensure_ascii=False)]) + "\n", encoding="utf-8")
    text = tuning.check(str(path), "lora", request())
    assert "2 good conversation(s), 3 bad line(s)" in text
    assert "line 2: not valid JSON" in text and "line 3:" in text and "line 4:" in text and "line 1:" not in text
    assert "정상 대화 2개, 문제 있는 줄 3개" in tuning.check(str(path), "lora", request("ko"))
    with pytest.warns(UserWarning, match="bad lines"):     # gr.Warning, outside a live request
        out = tuning.start(str(path), "lora", "bad-data", 10, False, request())
    assert not isinstance(out[0], TrainingJob) and "line 2: not valid JSON" in out[2]
    assert "bad lines" in out[3]
    runs = Path(shared.services.cfg.engine.adapters_dir) / ".runs" / "bad-data"
    assert not runs.exists()


def test_too_large_uploads_and_bad_settings_are_refused(shared, tuning, trained, tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b" " * (1024 * 1024 + 1))         # server.max_upload_mb is 1 here
    with pytest.raises(gr.Error, match="at most 1 MB"):
        tuning.check(str(big), "lora", request())
    with pytest.raises(gr.Error, match="at most 1 MB"):
        tuning.start(str(big), "lora", "big", 10, False, request())
    with pytest.raises(gr.Error, match="from 1 to"):
        tuning.start(None, "lora", "x", 0, False, request())
    with pytest.raises(gr.Error, match="tuning.name"):
        tuning.start(None, "lora", "../escape", 10, False, request())
    with pytest.raises(gr.Error, match="already exists.*or pick another name"):
        tuning.start(None, "lora", trained[0], 10, False, request())


def test_cancel_stops_the_run_and_one_run_at_a_time(shared, tuning):
    out = tuning.start(None, "lora", "long-run", 5000, False, request())
    job, key = out[0], out[1]
    try:
        def two_steps() -> bool:
            assert job.running(), job.log_tail()
            return job.status().step >= 2

        wait_for(two_steps, "two training steps", progress=job_moves(job), stall=120, poll=0.2, detail=job.log_tail)
        with pytest.raises(gr.Error, match="already going"):          # another page, same app
            tuning.start(None, "lora", "second", 10, False, request(page="page-2"))
        assert tuning.tick(None, key, request())[0] is job            # a reloaded page finds its run
        assert tuning.tick(None, "someone-else", request())[4].active is False
        view = tuning.cancel(job, key, request())
    finally:
        if job.running():
            job.process.kill()
    assert job.status().state == "cancelled", job.log_tail()
    assert "Cancelled" in view[1] and view[4].active is False and view[5].interactive is True
    assert "long-run" not in [a.name for a in shared.services.adapters.available()]


def test_a_remote_chat_model_refuses_adapters_with_the_reason(shared):
    """engine.backend = "openai": no AdapterRegistry; a chat that asks for an adapter is told why."""
    from engine.errors import AdapterError

    remote = SimpleNamespace(report=shared.services.engine.report, adapters=None, remote=True, max_context=4096)
    services = Services(shared.services.cfg, remote, shared.services.store)
    assert services.adapter_choices() == []
    assert "remote server" in adapters_markdown(services, "en")
    with pytest.raises(AdapterError, match="remote server"):
        services.reply([{"role": "user", "content": "hi"}], {"temperature": 0.0, "adapter": "ui-lora"}, None)
