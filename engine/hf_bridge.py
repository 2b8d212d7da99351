"""Every private name of transformers we touch, in one place (issue 22).

engine/, tuning/, bench/ and api/ reach transformers' internals only through the functions and names here:
an upgrade that drops one fails `missing_names()` (tests/test_bridges.py) naming it, and a call into a missing
one raises InternalsChanged naming the attribute instead of an AttributeError deep in a batching thread.

Written against transformers 5.23.0. Imports transformers lazily: importing this module costs nothing.
"""
from __future__ import annotations

import importlib
import inspect
import re
from typing import Any, Callable

from engine.pins import Bridge, Pin, pin_table

WRITTEN_FOR = "5.23.0"
HERE = "engine/hf_bridge.py"

_CB = "transformers.generation.continuous_batching"
_CB_API = f"{_CB}.continuous_api"
_CB_PROCESSORS = f"{_CB}.cb_logits_processors"
_SERVING_UTILS = "transformers.cli.serving.utils"


PINNED: dict[str, Pin] = pin_table(
    Pin("transformers", _CB_API, "OutputRouter", "_lock", "instance",
        "guards result_handlers: our per-request handler is added and removed under it"),
    Pin("transformers", _CB_API, "OutputRouter", "result_handlers", "instance",
        "a per-request callback run on the batching thread (no shared output queue, no event loop)"),
    Pin("transformers", _CB_API, "ContinuousBatchingManager", "_wake_up_loop", "instance",
        "the Event the batching thread sleeps on: replaced so an idle thread sleeps, set to wake it for stop"),
    Pin("transformers", _CB_API, "ContinuousBatchingManager", "_create_batch_processor", "class",
        "the factory run at each start: wrapped to give the new cache's zero pages back to the OS"),
    Pin("transformers", f"{_CB}.requests", "RequestState", "_true_initial_tokens", "class",
        "prompt length before a soft reset moved reply tokens into the prompt: counts reply tokens right"),
    Pin("transformers", "transformers.modeling_utils", "PreTrainedModel", "_from_config", "class",
        "builds a model from a config for classes without the public from_config (sizing on meta)"),
    Pin("transformers", "transformers.modeling_utils", "PreTrainedModel", "_no_split_modules", "class",
        "the blocks a device map must keep whole (offload map, preflight's largest block)"),
    Pin("transformers", "transformers.integrations.peft", "PeftAdapterMixin", "_hf_peft_config_loaded", "class",
        "whether a plain transformers model has adapters loaded (it has peft_config only then)"),
    Pin("transformers", "transformers.configuration_utils", "PretrainedConfig", "_attn_implementation", "class",
        "the attention implementation: continuous batching runs only on sdpa, eager and flash"),
    Pin("transformers", _CB_PROCESSORS, "", "ContinuousBatchingLogitsProcessor", "module",
        "base class of our per-request batch processors (engine/serving/sampling.py)"),
    Pin("transformers", _CB_PROCESSORS, "", "ContinuousBatchingLogitsProcessorList", "module",
        "the list a manager runs per step (manager.logit_processor)"),
    Pin("transformers", _CB_PROCESSORS, "", "ContinuousBatchingTemperatureLogitsWarper", "module",
        "transformers' own per-request temperature, the baseline of bench sampling"),
    Pin("transformers", _CB_PROCESSORS, "", "ContinuousBatchingTopPLogitsWarper", "module",
        "transformers' own per-request top-p, the baseline of bench sampling"),
    Pin("transformers", _SERVING_UTILS, "", "get_response_template", "module",
        "the built-in tool-call response parser by model type (transformers serve's)"),
)
BRIDGE = Bridge(HERE, {"transformers": WRITTEN_FOR}, PINNED)


_get, _set, _from_module = BRIDGE.get, BRIDGE.set, BRIDGE.from_module


class _DirectLoop:
    """Stands in for the event loop of an OutputRouter handler: runs the callback at once, in its thread."""

    @staticmethod
    def call_soon_threadsafe(callback: Callable, *args: Any) -> None:
        callback(*args)


def register_result_handler(manager: Any, request_id: str, handler: Callable[[Any], None]) -> None:
    """OutputRouter.result_handlers under OutputRouter._lock: `handler(output)` runs on the batching thread."""
    router = manager.output_router
    with _get(router, "OutputRouter._lock"):
        _get(router, "OutputRouter.result_handlers")[request_id] = (handler, _DirectLoop)


def unregister_result_handler(manager: Any, request_id: str) -> None:
    """Removes a handler from OutputRouter.result_handlers (under its _lock); absent is fine."""
    router = manager.output_router
    with _get(router, "OutputRouter._lock"):
        _get(router, "OutputRouter.result_handlers").pop(request_id, None)


def wake_batching_loop(manager: Any) -> None:
    """Sets ContinuousBatchingManager._wake_up_loop: a sleeping batching thread looks at its queues now."""
    _get(manager, "ContinuousBatchingManager._wake_up_loop").set()


def replace_wake_event(manager: Any, event: Any) -> None:
    """Replaces ContinuousBatchingManager._wake_up_loop (the Event the idle batching thread waits on)."""
    _set(manager, "ContinuousBatchingManager._wake_up_loop", event)


def wrap_batch_processor_factory(manager: Any, wrap: Callable[[Callable[[], Any]], Callable[[], Any]]) -> None:
    """Wraps ContinuousBatchingManager._create_batch_processor, which builds the processor and its cache."""
    key = "ContinuousBatchingManager._create_batch_processor"
    _set(manager, key, wrap(_get(manager, key)))


def prompt_tokens_moved(state: Any) -> int:
    """RequestState._true_initial_tokens: the real prompt length once a soft reset moved reply tokens into
    initial_tokens (0 when none did)."""
    return int(_get(state, "RequestState._true_initial_tokens") or 0)


def __getattr__(name: str) -> Any:
    """The classes of transformers' continuous-batching processor module (not exported by the package),
    imported on first use: ContinuousBatchingLogitsProcessor, ContinuousBatchingLogitsProcessorList,
    ContinuousBatchingTemperatureLogitsWarper, ContinuousBatchingTopPLogitsWarper."""
    key = f"{_CB_PROCESSORS}.{name}"
    if key in PINNED:
        return _from_module(key)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------- models and configs
def model_from_config(cls: Any, config: Any, **kwargs: Any) -> Any:
    """PreTrainedModel._from_config: a model from a config, for classes without the public from_config."""
    return _get(cls, "PreTrainedModel._from_config")(config, **kwargs)


def no_split_modules(model: Any) -> set[str]:
    """PreTrainedModel._no_split_modules: class names of the blocks a device map must not split."""
    return set(_get(model, "PreTrainedModel._no_split_modules") or ())


def peft_config_loaded(model: Any) -> bool:
    """PeftAdapterMixin._hf_peft_config_loaded: a plain transformers model has adapters loaded."""
    return bool(_get(model, "PeftAdapterMixin._hf_peft_config_loaded"))


def attn_implementation(config: Any) -> str:
    """PretrainedConfig._attn_implementation: the attention the model runs ("eager" when unset)."""
    return _get(config, "PretrainedConfig._attn_implementation") or "eager"


def response_template(tokenizer: Any, model: Any) -> dict | None:
    """transformers.cli.serving.utils.get_response_template: the built-in response parser by model type;
    None when the serving extras (fastapi) are not installed. Imported only here: it also loads fastapi."""
    try:
        module = importlib.import_module(_SERVING_UTILS)
    except ModuleNotFoundError as e:
        if e.name and not e.name.startswith("transformers"):
            return None      # transformers' serving extras missing: no built-in parsers, tools refused
        raise BRIDGE.changed(f"{_SERVING_UTILS}.get_response_template", f"import failed: {e}") from None
    except ImportError:
        return None
    return _get(module, f"{_SERVING_UTILS}.get_response_template")(tokenizer, model)


# ------------------------------------------------------------------------------------------------------ checks
def _assigned_in_init(cls: type, attr: str) -> bool:
    """`self.<attr> = ...` in cls.__init__'s source (for instance attributes of objects too costly to build)."""
    try:
        source = inspect.getsource(cls.__init__)
    except (OSError, TypeError):
        return False
    return re.search(rf"\bself\.{re.escape(attr)}\s*(:[^=\n]+)?=(?!=)", source) is not None


def missing_names(manager: Any = None) -> list[str]:
    """One message per pinned name the installed transformers lacks; [] when all are there.

    Class and module names are checked by import and hasattr; OutputRouter's instance attributes on a real
    OutputRouter; ContinuousBatchingManager's on `manager` (a real one, e.g. from init_continuous_batching)
    when given, else by reading ContinuousBatchingManager.__init__'s source."""
    problems, on_objects = BRIDGE.missing_static()
    instances: dict[str, Any] = {}
    if manager is not None:
        instances["ContinuousBatchingManager"] = manager
    for key in on_objects:
        pin = PINNED[key]
        cls, _ = BRIDGE.owner_of(key)
        if pin.owner in instances:
            ok = hasattr(instances[pin.owner], pin.attr)
        elif pin.owner == "OutputRouter":
            try:
                instances[pin.owner] = cls()
            except Exception as e:   # noqa: BLE001 - a changed constructor is a finding, not a crash
                problems.append(BRIDGE.message(key, f"OutputRouter() failed: {e}"))
                continue
            ok = hasattr(instances[pin.owner], pin.attr)
        else:
            ok = _assigned_in_init(cls, pin.attr)
        if not ok:
            problems.append(BRIDGE.message(key))
    return problems
