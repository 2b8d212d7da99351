"""config.json errors name the key, the bad value and what is allowed; the app refuses to start."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from config import AppConfig, ConfigError, config_from_dict, describe_options, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_is_valid():
    cfg = load_config(ROOT / "config.json")
    assert cfg.engine.model == "mistralai/Mistral-7B-Instruct-v0.3"
    assert cfg.engine.precision == "auto"


@pytest.mark.parametrize("data, expected", [
    ({"engine": {"precison": "auto"}}, "engine.precison: unknown key"),
    ({"engine": {"precision": "3bit"}}, 'engine.precision: "3bit" is not a rung; use "auto", one rung or a list of '
                                        'rungs from fp16, 8bit, 4bit, 4bit-offload'),
    ({"generation": {"temperature": 5}}, "generation.temperature: 5 is out of range; allowed 0.0 to 2.0"),
    ({"generation": {"max_new_tokens": "many"}}, 'generation.max_new_tokens: "many" is not allowed; expected integer'),
    ({"generation": {"max_new_tokens": True}}, "generation.max_new_tokens: true is not allowed; expected integer"),
    ({"server": {"port": 70000}}, "server.port: 70000 is out of range"),
    ({"engine": {"max_gpu_memory": "8GB"}}, 'engine.max_gpu_memory: "8GB" is not allowed; expected number or null'),
    ({"generation": {"stop": [1]}}, "generation.stop: [1] is not allowed; expected list of string"),
    ({"engnie": {}}, "engnie: unknown section"),
    ({"engine": []}, "engine: expected an object"),
])
def test_bad_values_name_the_key(data, expected):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_good_values_are_typed():
    cfg = config_from_dict({"engine": {"max_gpu_memory": 8}, "generation": {"stop": ["###"]}, "_comment": "x"})
    assert cfg.engine.max_gpu_memory == 8.0 and isinstance(cfg.engine.max_gpu_memory, float)
    assert cfg.generation.stop == ["###"]
    assert config_from_dict({}) == AppConfig()


def test_broken_json_names_the_line(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"engine": {"model": "x",}\n}')
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 1"):
        load_config(p)


def test_every_option_is_documented_in_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [key for key, *_ in describe_options() if f"`{key}`" not in readme]
    assert not missing, f"README lacks: {missing}"


def test_readme_table_rows_are_generated_from_the_dataclasses():
    """Each README row is exactly describe_options()'s: default, allowed values and help cannot drift."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = [key for key, default, allowed, help in describe_options()
             if f"| `{key}` | `{default}` | {allowed} | {help} |" not in readme]
    assert not stale, f"README rows out of date (regenerate from config.describe_options): {stale}"


@pytest.mark.parametrize("value, expected", [
    ("many", 'engine.max_concurrent: "many" is not allowed; expected "auto" or integer, 1 to 256'),
    (4.5, 'engine.max_concurrent: 4.5 is not allowed; expected "auto" or integer, 1 to 256'),
    (True, 'engine.max_concurrent: true is not allowed; expected "auto" or integer, 1 to 256'),
    (0, "engine.max_concurrent: 0 is out of range; allowed 1 to 256"),
])
def test_max_concurrent_takes_auto_or_an_integer_in_range(value, expected):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"engine": {"max_concurrent": value}})
    assert str(err.value) == expected
    assert AppConfig().engine.max_concurrent == "auto"
    assert config_from_dict({"engine": {"max_concurrent": 8}}).engine.max_concurrent == 8
    assert config_from_dict({"engine": {"max_concurrent": "auto"}}).engine.max_concurrent == "auto"


def test_app_refuses_to_start_with_one_line(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"generation": {"top_p": 0}}))
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--config", str(p)], capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert out.stderr.strip() == "config error: generation.top_p: 0 is out of range; allowed 0.01 to 1.0"
    assert "Traceback" not in out.stderr


def test_replace_is_checked_like_a_file():
    """Sections are validated dataclasses: dataclasses.replace (app.py, space_profile.py) cannot slip a bad value in."""
    import dataclasses

    cfg = AppConfig()
    assert dataclasses.replace(cfg.generation, max_new_tokens=8).max_new_tokens == 8
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(cfg.generation, max_new_tokens=0)
    assert str(err.value) == "generation.max_new_tokens: 0 is out of range; allowed 1 to 32768"


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    import os

    from config import files

    target = tmp_path / "config.json"
    files.atomic_write_text(target, '{"engine": {"precision": "4bit"}}')
    assert load_config(target).engine.precision == "4bit"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write_text(target, "{}")
    monkeypatch.undo()
    assert load_config(target).engine.precision == "4bit"
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # the temp file is gone too


# -- engine.precision: "auto", one rung, or the ladder as an ordered list of rungs (issue 23) ----------------

RUNG_LIST = "fp16, 8bit, 4bit, 4bit-offload"


@pytest.mark.parametrize("value", ["auto", "fp16", "8bit", "4bit", "4bit-offload", ["fp16", "4bit"],
                                   ["4bit"], ["fp16", "8bit", "4bit", "4bit-offload"]])
def test_precision_takes_auto_a_rung_or_an_ordered_list(value):
    assert config_from_dict({"engine": {"precision": value}}).engine.precision == value


def test_the_rungs_config_names_are_the_loaders():
    from config import RUNGS
    from engine.loading import preflight

    assert RUNGS == preflight.RUNGS


@pytest.mark.parametrize("value, english, korean", [
    ("3bit", f'engine.precision: "3bit" is not a rung; use "auto", one rung or a list of rungs from {RUNG_LIST}',
     f'engine.precision: "3bit" 은(는) 정밀도 단계가 아닙니다. "auto", 단계 하나, 또는 단계 목록을 쓰세요: {RUNG_LIST}'),
    (["fp16", "2bit"], f'engine.precision: "2bit" is not a rung; use "auto", one rung or a list of rungs from '
     f'{RUNG_LIST}', f'engine.precision: "2bit" 은(는) 정밀도 단계가 아닙니다. "auto", 단계 하나, 또는 단계 목록을 '
     f'쓰세요: {RUNG_LIST}'),
    (["auto"], f'engine.precision: "auto" is not a rung; use "auto", one rung or a list of rungs from {RUNG_LIST}',
     None),
    ([], f'engine.precision: [] lists no rung; use "auto", one rung or a list of rungs from {RUNG_LIST}',
     f'engine.precision: [] 에 단계가 하나도 없습니다. "auto", 단계 하나, 또는 단계 목록을 쓰세요: {RUNG_LIST}'),
    (["fp16", "4bit", "fp16"], f'engine.precision: "fp16" is listed twice; list each rung once, from {RUNG_LIST}',
     f'engine.precision: "fp16" 이(가) 두 번 들어 있습니다. 단계마다 한 번씩만 쓰세요: {RUNG_LIST}'),
    (4, f'engine.precision: 4 is not a rung; use "auto", one rung or a list of rungs from {RUNG_LIST}', None),
])
def test_a_bad_ladder_is_refused_in_one_line_naming_the_key_and_the_rungs(tmp_path, value, english, korean):
    """From a file, from code (dataclasses.replace) and from the Models tab (in the browser's language)."""
    import dataclasses

    from ui.models import config_error_text, save_precision

    p = tmp_path / "config.json"
    p.write_text(json.dumps({"engine": {"precision": value}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(err.value) == english
    with pytest.raises(ConfigError) as again:
        dataclasses.replace(AppConfig().engine, precision=value)
    assert str(again.value) == english
    if korean is not None:
        assert config_error_text(err.value, "en") == english
        assert config_error_text(err.value, "ko") == korean and "\n" not in korean
    target = tmp_path / "saved.json"
    target.write_text('{"engine": {"precision": "auto"}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="^engine.precision: "):
        save_precision(str(target), value)
    assert load_config(target).engine.precision == "auto"      # nothing was written
