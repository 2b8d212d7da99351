"""Which card and how much of it: PCI matching of NVML rows, bf16 by compute capability, training room."""
from __future__ import annotations

import json

import pytest
import torch

from engine.loading.memory import half_dtype, supports_bf16
from engine.monitor import free_gpu_bytes, parse_nvml_bus_id, pci_key, read_gpus, torch_devices_by_pci
from tuning.jobs import NoRoomForTraining, check_room, resolve_config, start_training, training_need_bytes


def test_nvml_bus_ids_and_torch_properties_meet_in_one_spelling():
    assert parse_nvml_bus_id("00000000:01:00.0") == pci_key(0, 1, 0) == "0000:01:00.0"
    assert parse_nvml_bus_id(b"00000001:C1:1F.0") == pci_key(1, 0xC1, 0x1F)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU answers")
def test_without_a_gpu_the_answers_are_none_not_errors():
    assert free_gpu_bytes() is None and torch_devices_by_pci() == {}
    gpus, note = read_gpus()
    assert gpus == [] and note.startswith("no GPU")
    assert supports_bf16() and half_dtype() == torch.bfloat16       # the CPU runs bf16 natively


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_free_memory_is_torchs_and_bf16_follows_compute_capability():
    assert free_gpu_bytes(0) == pytest.approx(torch.cuda.mem_get_info(0)[0], rel=0.05)
    assert supports_bf16(0) == (torch.cuda.get_device_capability(0)[0] >= 8)
    gpus, _ = read_gpus()
    assert {g.torch_index for g in gpus if g.torch_index is not None} == set(range(torch.cuda.device_count()))


def _train_config(tmp_path, model_dir, **changes):
    data = tmp_path / "data.jsonl"
    line = {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요."}]}
    data.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    return resolve_config({"name": "room", "dataset": str(data), "base_model": str(model_dir),
                           "adapters_dir": str(tmp_path / "adapters"), "max_length": 64, "batch_size": 1} | changes)


def test_training_that_does_not_fit_the_room_left_is_refused_with_what_would(tmp_path, tiny_model_dir):
    from transformers import AutoConfig

    cfg = _train_config(tmp_path, tiny_model_dir)
    need = training_need_bytes(cfg, AutoConfig.from_pretrained(tiny_model_dir))
    check_room(cfg, need)                                    # exactly enough: accepted
    with pytest.raises(NoRoomForTraining, match=r"needs about .* GiB on the GPU, but .* is free next to the models"):
        check_room(cfg, need - 1)
    with pytest.raises(NoRoomForTraining):                   # refused before any subprocess or run folder
        start_training(cfg, room_bytes=need // 2)
    assert not cfg.run_dir.exists()
