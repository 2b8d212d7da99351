"""TrainConfig: shipped configs load; bad keys, values and names fail with the key named."""
from pathlib import Path

import pytest

from config import ConfigError
from tuning.config import TrainConfig, config_from_dict, load_config, parse_overrides

CONFIGS = Path(__file__).resolve().parents[1] / "tuning" / "configs"


@pytest.mark.parametrize("name", ["lora.json", "qlora.json", "demo-lora.json", "demo-qlora.json"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.method == ("qlora" if "qlora" in name else "lora")
    assert cfg.base_model == ("demo:smollm2" if name.startswith("demo") else "mistralai/Mistral-7B-Instruct-v0.3")
    if cfg.method == "qlora":
        assert cfg.gradient_checkpointing


@pytest.mark.parametrize("data, key", [
    ({"name": "x", "dataset": "d", "lora_rank": 8}, "tuning.lora_rank: unknown key"),
    ({"name": "x", "dataset": "d", "lora_r": 0}, "tuning.lora_r: 0 is out of range"),
    ({"name": "x", "dataset": "d", "method": "dora"}, "tuning.method"),
    ({"name": "x", "dataset": "d", "epochs": "three"}, "tuning.epochs"),
    ({"name": "../x", "dataset": "d"}, "tuning.name"),
    ({"name": "x"}, "tuning.dataset: required"),
    ({"name": "x", "dataset": "d", "target_modules": []}, "tuning.target_modules"),
    ({"name": "x", "dataset": "d", "resume": True, "overwrite": True}, "choose one"),
])
def test_bad_settings_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert key in str(err.value)


def test_limits_hold_for_configs_built_in_code():
    with pytest.raises(ConfigError, match="eval_fraction"):
        TrainConfig(name="x", dataset="d", eval_fraction=0.9)


def test_overrides_are_typed():
    o = parse_overrides(["--max_steps", "30", "--learning_rate", "1e-3", "--resume", "--name", "봇-1",
                         "--target_modules", "q_proj,v_proj", "--gradient_checkpointing", "false"])
    assert o == {"max_steps": 30, "learning_rate": 1e-3, "resume": True, "name": "봇-1",
                 "target_modules": ["q_proj", "v_proj"], "gradient_checkpointing": False}
    cfg = config_from_dict({"name": "x", "dataset": "d"}, o)
    assert cfg.name == "봇-1" and cfg.max_steps == 30 and cfg.run_dir == Path("adapters/.runs/봇-1")
    with pytest.raises(ConfigError, match="--max_step"):
        parse_overrides(["--max_step", "3"])
    with pytest.raises(ConfigError, match="needs a value"):
        parse_overrides(["--max_steps"])
