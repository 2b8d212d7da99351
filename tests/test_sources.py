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
