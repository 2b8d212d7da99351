"""Training as a subprocess: cancel leaves no adapter, --resume continues from the checkpoint,
and the CLI runs under `accelerate launch`."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.adapters import list_adapters
from config import ConfigError
from tuning.dataset import DatasetError
from tuning.jobs import CANCEL_GRACE_S, start_training
from tuning.runs import RunFolderError, last_checkpoint

from tests.waiting import combined, file_size, process_work, wait_for

ROOT = Path(__file__).resolve().parents[1]


def job_config(tmp: Path, **changes) -> dict:
    data = tmp / "data.jsonl"
    line = {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요, 반가워요."}]}
    data.write_text((json.dumps(line, ensure_ascii=False) + "\n") * 8, encoding="utf-8")
    return {"name": "job", "dataset": str(data), "base_model": "demo:tiny", "adapters_dir": str(tmp / "adapters"),
            "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "max_length": 64, "eval_fraction": 0.0,
            "max_steps": 5000, "batch_size": 2, "grad_accum": 1, "learning_rate": 0.01, "lr_scheduler": "constant",
            "warmup_steps": 0, "gradient_checkpointing": False, "logging_steps": 1, "save_steps": 5,
            "save_total_limit": 2} | changes


def job_moves(job):
    """Progress of a training subprocess: its log, its CPU time, its step."""
    return combined(file_size(job.log_path), process_work(job.process.pid), lambda: job.status().step)


def wait_job(job, predicate, what: str, *, while_running: bool = True):
    """Wait while the job moves; fail at once if it ends first (unless we wait for its end)."""
    def check() -> bool:
        if predicate():
            return True
        if while_running and not job.running():
            pytest.fail(f"job ended early: {job.status()}\n{job.log_tail()}")
        return False

    return wait_for(check, what, progress=job_moves(job), stall=120, detail=job.log_tail)


def visible_folders(adapters: Path) -> list[str]:
    return sorted(p.name for p in adapters.iterdir() if not p.name.startswith(".")) if adapters.is_dir() else []


def test_cancel_publishes_nothing_and_resume_continues_from_the_checkpoint(tmp_path):
    config = job_config(tmp_path)
    job = start_training(config)
    try:
        wait_job(job, lambda: last_checkpoint(job.run_dir) is not None, "the first checkpoint")
        assert job.status().state == "training"
        status = job.cancel(timeout=60)
    finally:
        if job.running():
            job.process.kill()
    assert status.state == "cancelled" and status.returncode == 3, (status, job.log_tail())
    adapters = Path(config["adapters_dir"])
    assert list_adapters(adapters) == [] and visible_folders(adapters) == []
    step, _ = last_checkpoint(job.run_dir)
    assert step >= 5 and job.metrics()[-1]["step"] >= step - 1

    with pytest.raises(RunFolderError, match="--resume"):      # checkpoints are never dropped silently
        start_training(config)
    resumed = start_training(config, {"resume": True, "max_steps": step + 4})
    wait_job(resumed, lambda: not resumed.running(), "the resumed run to end", while_running=False)
    final = resumed.status()
    assert final.state == "succeeded", (final, resumed.log_tail())
    meta = json.loads((adapters / "job" / "meta.json").read_text())
    assert meta["resumed_from_step"] == step and meta["steps"] == step + 4
    steps = [r["step"] for r in resumed.metrics() if "loss" in r]
    assert steps == list(range(1, step + 5)), steps          # no gap, no step logged twice
    assert "resuming from checkpoint-%d" % step in resumed.log_tail(200)
    assert [a.name for a in list_adapters(adapters)] == ["job"]


def test_cancel_while_loading_stops_at_once(tmp_path):
    config = job_config(tmp_path)
    job = start_training(config)
    status = job.cancel(timeout=60)                     # still importing: SIGTERM ends it as it is
    assert status.state == "cancelled", (status, job.log_tail())
    job = start_training(config)
    wait_job(job, lambda: job.status().state == "loading", "the job to be loading")
    started = time.monotonic()
    status = job.cancel(timeout=60)                     # our handler stops it before training starts
    assert status.state == "cancelled" and status.returncode == 3, (status, job.log_tail())
    assert time.monotonic() - started < 30
    assert visible_folders(Path(config["adapters_dir"])) == []


def test_the_pages_cancel_confirms_within_its_grace_even_in_the_middle_of_a_long_step(tmp_path):
    """The Tuning tab's Cancel (CANCEL_GRACE_S): a step that would take far longer is not waited for (issue 24:
    it once took about 20 s to confirm); the run shows its phases and example count on the way."""
    config = job_config(tmp_path, batch_size=8, grad_accum=400)   # one step: 400 batches of 8, minutes here
    data = Path(config["dataset"])
    data.write_text(data.read_text(encoding="utf-8") * 400, encoding="utf-8")
    job = start_training(config)
    try:
        wait_job(job, lambda: job.status().state == "training", "the job to be training")
        st = job.status()
        assert st.examples == 3200 and st.step == 0 and st.seconds_per_step is None, st
        time.sleep(1.0)                                  # inside its first step
        started = time.monotonic()
        status = job.cancel(timeout=CANCEL_GRACE_S)
        took = time.monotonic() - started
    finally:
        if job.running():
            job.process.kill()
    assert status.state == "cancelled" and not job.running(), (status, job.log_tail())
    assert status.step == 0 and took < CANCEL_GRACE_S + 1.5, (status, took)
    assert visible_folders(Path(config["adapters_dir"])) == []


def test_bad_config_and_bad_lines_fail_in_the_caller(tmp_path):
    with pytest.raises(ConfigError, match="lora_r"):
        start_training(job_config(tmp_path, lora_r=0))
    config = job_config(tmp_path)
    Path(config["dataset"]).write_text('{"messages": []}\nnot json\n')
    with pytest.raises(DatasetError) as err:
        start_training(config)
    assert "line 1:" in str(err.value) and "line 2: not valid JSON" in str(err.value)
    assert not Path(config["adapters_dir"]).exists()


def test_failure_in_the_subprocess_shows_in_status(tmp_path):
    config = job_config(tmp_path, max_length=16)      # lines are longer: only the tokenizer can tell
    job = start_training(config)
    status = job.wait(120)
    assert status.state == "failed" and status.returncode == 2, (status, job.log_tail())
    assert "line 1:" in status.message and "longer than max_length 16" in status.message
    assert "line 8:" in status.message
    assert visible_folders(Path(config["adapters_dir"])) == []


@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate CLI not installed")
def test_cli_runs_under_accelerate_launch(tmp_path):
    config = job_config(tmp_path, max_steps=4, save_steps=2, logging_steps=1)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    accelerate = str(Path(sys.executable).parent / "accelerate")
    out = subprocess.run([accelerate, "launch", "--num_processes", "1", "--cpu", "-m", "tuning.train",
                          "--config", str(path), "--name", "accel"], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    meta = json.loads((Path(config["adapters_dir"]) / "accel" / "meta.json").read_text())
    assert meta["steps"] == 4 and meta["method"] == "lora"
