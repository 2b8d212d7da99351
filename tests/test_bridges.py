"""The two bridges to library internals (issue 22): engine/hf_bridge.py (transformers) and ui/gradio_bridge.py
(gradio, spaces). On the pinned versions nothing is missing; when an upgrade drops a pinned name (simulated
by deleting it from the real library class, module or object), missing_names() names exactly that name, and
the bridge function that uses it raises InternalsChanged naming it instead of a bare AttributeError."""
from __future__ import annotations

import importlib
import re
import threading

import pytest

from engine import hf_bridge
from engine.pins import InternalsChanged
from ui import gradio_bridge

NEEDS_HF = "engine/hf_bridge.py needs updating"
NEEDS_GR = "ui/gradio_bridge.py needs updating"


def _class_of(pin) -> type:
    return getattr(importlib.import_module(pin.module), pin.owner)


def _only_names(messages: list[str], name: str, needs: str) -> None:
    assert len(messages) == 1, messages
    assert re.search(rf"no longer has {re.escape(name)}\b", messages[0]), messages
    assert needs in messages[0]


# ------------------------------------------------------------------------------------------------ transformers
@pytest.fixture(scope="module")
def cb_model(tiny_model_dir):
    """A tiny demo model of this module's own (init_continuous_batching switches its attention)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


@pytest.fixture()
def cb_manager(cb_model):
    """A real ContinuousBatchingManager on the tiny model, never started (no thread, no cache)."""
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    cb = ContinuousBatchingConfig(num_blocks=4, max_batch_tokens=32, max_requests_per_batch=2,
                                  auto_switch_to_flash=False, allow_block_sharing=False)
    manager = cb_model.init_continuous_batching(generation_config=GenerationConfig(do_sample=False, max_new_tokens=4, eos_token_id=2),
                                                continuous_batching_config=cb)
    assert not manager.is_running()
    return manager


def test_transformers_is_the_pinned_version_and_nothing_is_missing(cb_manager):
    import transformers

    assert transformers.__version__ == hf_bridge.WRITTEN_FOR
    assert hf_bridge.missing_names() == []
    assert hf_bridge.missing_names(manager=cb_manager) == []   # instance attributes on a real manager


@pytest.mark.parametrize("name", [n for n, p in hf_bridge.PINNED.items() if p.how == "class"])
def test_a_class_attribute_removed_by_an_upgrade_is_named(monkeypatch, name):
    pin = hf_bridge.PINNED[name]
    monkeypatch.delattr(_class_of(pin), pin.attr)
    _only_names(hf_bridge.missing_names(), name, NEEDS_HF)


@pytest.mark.parametrize("name", [n for n, p in hf_bridge.PINNED.items() if p.how == "module"])
def test_a_module_name_removed_by_an_upgrade_is_named(monkeypatch, name):
    pin = hf_bridge.PINNED[name]
    monkeypatch.delattr(importlib.import_module(pin.module), pin.attr)
    _only_names(hf_bridge.missing_names(), name, NEEDS_HF)


def test_a_manager_without_its_wake_event_is_named(monkeypatch, cb_manager):
    monkeypatch.delattr(cb_manager, "_wake_up_loop")
    _only_names(hf_bridge.missing_names(manager=cb_manager), "ContinuousBatchingManager._wake_up_loop", NEEDS_HF)


def test_without_a_manager_the_wake_event_is_read_from_init(monkeypatch):
    """An upgrade whose ContinuousBatchingManager.__init__ no longer creates _wake_up_loop."""
    from transformers.generation.continuous_batching.continuous_api import ContinuousBatchingManager

    def __init__(self, model, generation_config, continuous_batching_config, workload_hints=None):
        self.wake_event = threading.Event()

    monkeypatch.setattr(ContinuousBatchingManager, "__init__", __init__)
    _only_names(hf_bridge.missing_names(), "ContinuousBatchingManager._wake_up_loop", NEEDS_HF)


def test_an_output_router_without_its_lock_is_named(monkeypatch):
    """An upgrade whose OutputRouter keeps result_handlers but renamed _lock (checked on a real router)."""
    import queue

    from transformers.generation.continuous_batching.continuous_api import OutputRouter

    def __init__(self):
        self.output_queue, self.result_handlers, self.lock = queue.Queue(), {}, threading.Lock()

    monkeypatch.setattr(OutputRouter, "__init__", __init__)
    _only_names(hf_bridge.missing_names(), "OutputRouter._lock", NEEDS_HF)


def test_the_batching_functions_work_on_a_real_manager(cb_manager):
    got = []
    hf_bridge.register_result_handler(cb_manager, "r1", got.append)
    cb_manager.output_router.deliver(_Output("r1"))
    assert [o.request_id for o in got] == ["r1"]          # our handler ran at once, in this thread
    hf_bridge.unregister_result_handler(cb_manager, "r1")
    hf_bridge.unregister_result_handler(cb_manager, "r1")  # absent is fine
    cb_manager.output_router.deliver(_Output("r1"))
    assert len(got) == 1 and cb_manager.output_router.output_queue.get_nowait().request_id == "r1"

    event = threading.Event()
    hf_bridge.replace_wake_event(cb_manager, event)
    hf_bridge.wake_batching_loop(cb_manager)
    assert event.is_set()

    made = []
    hf_bridge.wrap_batch_processor_factory(cb_manager, lambda make: lambda: made.append(make) or "processor")
    assert cb_manager._create_batch_processor() == "processor" and callable(made[0])


class _Output:
    def __init__(self, request_id: str):
        self.request_id = request_id


def test_the_model_functions_read_the_real_model(cb_model, tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer
    from transformers.generation.continuous_batching import RequestState

    assert hf_bridge.no_split_modules(cb_model) == {"MistralDecoderLayer"}
    assert hf_bridge.peft_config_loaded(cb_model) is False
    assert isinstance(hf_bridge.attn_implementation(cb_model.config), str)
    model_cls = type(cb_model)
    assert type(hf_bridge.model_from_config(model_cls, AutoConfig.for_model(**cb_model.config.to_dict()))) is model_cls
    assert hf_bridge.prompt_tokens_moved(RequestState(request_id="r", initial_tokens=[1, 2, 3])) == 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = hf_bridge.response_template(tokenizer, cb_model)     # transformers serve's parser, by model type
    assert template is None or isinstance(template, dict)


def test_bridge_functions_name_what_is_missing(monkeypatch, cb_manager, cb_model):
    from transformers.generation.continuous_batching.continuous_api import ContinuousBatchingManager
    from transformers.modeling_utils import PreTrainedModel

    monkeypatch.delattr(ContinuousBatchingManager, "_create_batch_processor")
    with pytest.raises(InternalsChanged, match=r"no longer has ContinuousBatchingManager\."
                       r"_create_batch_processor: engine/hf_bridge\.py needs updating"):
        hf_bridge.wrap_batch_processor_factory(cb_manager, lambda make: make)

    monkeypatch.delattr(cb_manager, "_wake_up_loop")
    with pytest.raises(InternalsChanged, match=r"ContinuousBatchingManager\._wake_up_loop"):
        hf_bridge.wake_batching_loop(cb_manager)
    with pytest.raises(InternalsChanged, match=r"ContinuousBatchingManager\._wake_up_loop"):
        hf_bridge.replace_wake_event(cb_manager, threading.Event())

    monkeypatch.delattr(cb_manager.output_router, "_lock")
    with pytest.raises(InternalsChanged, match=r"OutputRouter\._lock"):
        hf_bridge.register_result_handler(cb_manager, "r", print)

    monkeypatch.delattr(PreTrainedModel, "_from_config")
    with pytest.raises(InternalsChanged, match=r"PreTrainedModel\._from_config"):
        hf_bridge.model_from_config(type(cb_model), cb_model.config)
    monkeypatch.delattr(cb_model, "_no_split_modules")                    # set per instance by post_init
    for cls in type(cb_model).__mro__:                                    # PreTrainedModel's, Mistral's own
        if "_no_split_modules" in vars(cls):
            monkeypatch.delattr(cls, "_no_split_modules")
    with pytest.raises(InternalsChanged, match=r"PreTrainedModel\._no_split_modules"):
        hf_bridge.no_split_modules(cb_model)

    monkeypatch.delattr(importlib.import_module("transformers.cli.serving.utils"), "get_response_template")
    with pytest.raises(InternalsChanged, match=r"transformers\.cli\.serving\.utils\.get_response_template:"):
        hf_bridge.response_template(None, cb_model)

    monkeypatch.delattr(importlib.import_module(hf_bridge._CB_PROCESSORS), "ContinuousBatchingLogitsProcessor")
    with pytest.raises(InternalsChanged, match=r"cb_logits_processors\.ContinuousBatchingLogitsProcessor:"):
        hf_bridge.ContinuousBatchingLogitsProcessor


# ------------------------------------------------------------------------------------------------------ gradio
def test_gradio_and_spaces_are_the_pinned_versions_and_nothing_is_missing():
    import gradio as gr
    from importlib.metadata import version

    assert gr.__version__ == gradio_bridge.WRITTEN_FOR["gradio"]
    assert version("spaces") == gradio_bridge.WRITTEN_FOR["spaces"]
    assert gradio_bridge.missing_names() == []
    assert gradio_bridge.missing_names(blocks=gr.Blocks().queue(), event=gr.EventData(None, {"id": "x"})) == []


@pytest.mark.parametrize("name", [n for n, p in gradio_bridge.PINNED.items() if p.how in ("class", "module")])
def test_a_gradio_class_or_module_name_removed_by_an_upgrade_is_named(monkeypatch, name):
    pin = gradio_bridge.PINNED[name]
    module = importlib.import_module(pin.module)
    monkeypatch.delattr(getattr(module, pin.owner) if pin.owner else module, pin.attr)
    _only_names(gradio_bridge.missing_names(), name, NEEDS_GR)


@pytest.mark.parametrize("name", ["Blocks._queue", "Blocks.has_launched"])
def test_blocks_without_an_instance_attribute_are_named(monkeypatch, name):
    import gradio as gr

    blocks = gr.Blocks().queue()
    monkeypatch.delattr(blocks, gradio_bridge.PINNED[name].attr)
    _only_names(gradio_bridge.missing_names(blocks=blocks), name, NEEDS_GR)


@pytest.mark.parametrize("name", ["Queue.sleep_when_free", "Queue.progress_update_sleep_when_free"])
def test_a_queue_without_its_idle_sleep_is_named(monkeypatch, name):
    import gradio as gr

    blocks = gr.Blocks().queue()
    monkeypatch.delattr(blocks._queue, gradio_bridge.PINNED[name].attr)
    _only_names(gradio_bridge.missing_names(blocks=blocks), name, NEEDS_GR)


def test_event_data_renamed_by_an_upgrade_is_named(monkeypatch):
    import gradio as gr

    def __init__(self, target, _data):
        self.target, self.payload = target, _data

    monkeypatch.setattr(gr.EventData, "__init__", __init__)
    _only_names(gradio_bridge.missing_names(), "EventData._data", NEEDS_GR)
    with pytest.raises(InternalsChanged, match=r"no longer has EventData\._data: ui/gradio_bridge"):
        gradio_bridge.event_data(gr.EventData(None, {"action": "open"}))


def test_a_changed_spaces_launch_hook_is_named(monkeypatch):
    import gradio as gr
    from spaces.zero import gradio as zero_gradio

    def one_launch(startup):
        def launch(*args, **kwargs):
            startup()
        gr.Blocks.launch = launch

    monkeypatch.setattr(zero_gradio, "one_launch", one_launch)
    messages = gradio_bridge.missing_names()
    assert len(messages) == 3, messages
    for cell, message in zip(gradio_bridge.LAUNCH_CELLS, messages):
        assert f"no longer has spaces.zero.gradio.one_launch.<launch closure>.{cell}:" in message
        assert message.startswith("spaces 0.51.3 ") and NEEDS_GR in message


def test_the_gradio_functions_work_on_real_objects():
    import gradio as gr

    blocks = gr.Blocks().queue()
    assert gradio_bridge.queue_of(blocks) is blocks._queue
    gradio_bridge.mark_launched(blocks)
    assert blocks.has_launched is True
    assert gradio_bridge.event_data(gr.EventData(None, {"action": "open", "id": "s1"})) == {"action": "open", "id": "s1"}
    assert gradio_bridge.event_data(gr.EventData(None, "not a dict")) == {}


def test_gradio_bridge_functions_name_what_is_missing(monkeypatch):
    import gradio as gr
    from spaces.zero import gradio as zero_gradio

    blocks = gr.Blocks()
    monkeypatch.delattr(blocks, "_queue")
    with pytest.raises(InternalsChanged, match=r"no longer has Blocks\._queue: ui/gradio_bridge"):
        gradio_bridge.queue_of(blocks)
    monkeypatch.delattr(blocks, "has_launched")
    with pytest.raises(InternalsChanged, match=r"Blocks\.has_launched"):
        gradio_bridge.mark_launched(blocks)

    original = gr.Blocks.launch
    try:
        with pytest.raises(InternalsChanged, match=r"one_launch\.<launch closure>\.task "):
            gradio_bridge.take_zerogpu_startup()       # launch is not spaces' hook
        calls = []
        zero_gradio.one_launch(lambda *a: calls.append(a), 1)
        monkeypatch.delattr(zero_gradio, "_orig_launch")
        with pytest.raises(InternalsChanged, match=r"spaces\.zero\.gradio\._orig_launch"):
            gradio_bridge.take_zerogpu_startup()
        assert calls == []
    finally:
        gr.Blocks.launch = original
