"""When the configured model cannot be had, the engine says why and (if allowed) loads the demo model."""
import shutil

import pytest

from engine.chat import ChatEngine
from config import EngineConfig
from engine.loading.sources import resolve_source
from engine.errors import SourceError


def test_local_folder_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(SourceError, match="only .bin/.pt pickles, which we never load"):
        resolve_source(str(tmp_path))


def test_unreachable_hub_id_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(SourceError, match="set engine.model in config.json to a local folder"):
        resolve_source("someone/not-cached-model")


def test_nonsense_model_name_is_refused():
    with pytest.raises(SourceError, match="neither a local folder nor a hub id"):
        resolve_source("not a model")


def test_local_copy_of_a_model_loads(tmp_path, tiny_model_dir):
    folder = tmp_path / "my-mistral"
    shutil.copytree(tiny_model_dir, folder)
    engine = ChatEngine.load(EngineConfig(model=str(folder)))
    assert engine.report.model_id == str(folder) and not engine.report.demo
    assert "Demo model" not in engine.report.notice


def test_fallback_to_demo_explains_why(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    engine = ChatEngine.load(EngineConfig(model="mistralai/Mistral-7B-Instruct-v0.3", demo_size="tiny"))
    assert engine.report.demo and engine.report.model_id == "demo:tiny"
    notice = engine.report.notice
    assert notice.startswith("Could not load mistralai/Mistral-7B-Instruct-v0.3")
    assert "local folder" in notice and "replies are noise" in notice


def test_no_fallback_when_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(SourceError):
        ChatEngine.load(EngineConfig(model="mistralai/Mistral-7B-Instruct-v0.3", demo_fallback=False))


def test_a_one_time_build_says_every_few_seconds_that_it_is_still_working(tmp_path, monkeypatch, capsys):
    """The first start converts the offline model once (about 30 s): the terminal must not look hung (issue 24)."""
    import io
    import time

    from engine.loading.demo.build import cached_build
    from engine.loading.heartbeat import heartbeat

    out = io.StringIO()
    with heartbeat("converting x", every=0.1, stream=out):
        time.sleep(0.45)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[build] converting x (once; later starts reuse it)…", lines
    assert sum(line.startswith("[build] converting x… ") for line in lines) >= 3, lines
    assert lines[-1].startswith("[build] converting x: done in "), lines

    monkeypatch.setenv("APP_CACHE_DIR", str(tmp_path))
    folder = cached_build("probe", {"v": 1}, lambda staging: (staging / "x").write_text("1"))
    assert (folder / "x").read_text() == "1"
    assert "[build] preparing probe (once; later starts reuse it)…" in capsys.readouterr().out
    cached_build("probe", {"v": 1}, lambda staging: None)          # cached: nothing to say
    assert "[build]" not in capsys.readouterr().out


def test_the_kernels_community_warning_is_dropped_once_a_quantized_rung_is_prepared(caplog):
    """bitsandbytes logs it at import on CPUs with AVX512-BF16 (not this one, so the record is made here, on the
    logger it uses); preparing a quantized load hushes it and nothing else from that logger."""
    import logging

    from engine.loading.loader import LoadPlan, _rung_kwargs
    from engine.loading.quiet_logs import BNB_CPU_LOGGER

    logger = logging.getLogger(BNB_CPU_LOGGER)
    notice = ("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
              "`pip install kernels` and the kernels >= 0.11.1")
    _rung_kwargs("4bit", cuda=False, plan=LoadPlan(precision="4bit"))
    with caplog.at_level(logging.WARNING, logger=BNB_CPU_LOGGER):
        logger.warning(notice, ModuleNotFoundError("No module named 'kernels'"))
        logger.warning("another bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["another bitsandbytes warning"]
