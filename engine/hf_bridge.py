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
from dataclasses import dataclass
from typing import Any, Callable

WRITTEN_FOR = "5.23.0"
HERE = "engine/hf_bridge.py"

_CB = "transformers.generation.continuous_batching"
_CB_API = f"{_CB}.continuous_api"
_CB_PROCESSORS = f"{_CB}.cb_logits_processors"
_SERVING_UTILS = "transformers.cli.serving.utils"


@dataclass(frozen=True)
class Pin:
    """One (object, attribute) this module relies on.

    how: "class"    - hasattr on the class (methods, class defaults, properties)
         "instance" - set by the class's __init__: checked on a real instance (built here when cheap, else
                      the one passed to missing_names, else by reading __init__'s source)
         "module"   - a name importable from a module (the module is private, or the name is)
    """
    module: str
    owner: str        # class name inside `module`; "" for a module-level name
    attr: str
    how: str
    why: str

    @property
    def name(self) -> str:
        return f"{self.owner}.{self.attr}" if self.owner else f"{self.module}.{self.attr}"


PINNED: dict[str, Pin] = {p.name: p for p in (
    Pin(_CB_API, "OutputRouter", "_lock", "instance",
        "guards result_handlers: our per-request handler is added and removed under it"),
    Pin(_CB_API, "OutputRouter", "result_handlers", "instance",
        "a per-request callback run on the batching thread (no shared output queue, no event loop)"),
    Pin(_CB_API, "ContinuousBatchingManager", "_wake_up_loop", "instance",
        "the Event the batching thread sleeps on: replaced so an idle thread sleeps, set to wake it for stop"),
    Pin(_CB_API, "ContinuousBatchingManager", "_create_batch_processor", "class",
        "the factory run at each start: wrapped to give the new cache's zero pages back to the OS"),
    Pin(f"{_CB}.requests", "RequestState", "_true_initial_tokens", "class",
        "prompt length before a soft reset moved reply tokens into the prompt: counts reply tokens right"),
    Pin("transformers.modeling_utils", "PreTrainedModel", "_from_config", "class",
        "builds a model from a config for classes without the public from_config (sizing on meta)"),
    Pin("transformers.modeling_utils", "PreTrainedModel", "_no_split_modules", "class",
        "the blocks a device map must keep whole (offload map, preflight's largest block)"),
    Pin("transformers.integrations.peft", "PeftAdapterMixin", "_hf_peft_config_loaded", "class",
        "whether a plain transformers model has adapters loaded (it has peft_config only then)"),
    Pin("transformers.configuration_utils", "PretrainedConfig", "_attn_implementation", "class",
        "the attention implementation: continuous batching runs only on sdpa, eager and flash"),
    Pin(_CB_PROCESSORS, "", "ContinuousBatchingLogitsProcessor", "module",
        "base class of our per-request batch processors (engine/serving/sampling.py)"),
    Pin(_CB_PROCESSORS, "", "ContinuousBatchingLogitsProcessorList", "module",
        "the list a manager runs per step (manager.logit_processor)"),
    Pin(_CB_PROCESSORS, "", "ContinuousBatchingTemperatureLogitsWarper", "module",
        "transformers' own per-request temperature, the baseline of bench sampling"),
    Pin(_CB_PROCESSORS, "", "ContinuousBatchingTopPLogitsWarper", "module",
        "transformers' own per-request top-p, the baseline of bench sampling"),
    Pin(_SERVING_UTILS, "", "get_response_template", "module",
        "the built-in tool-call response parser by model type (transformers serve's)"),
)}


class InternalsChanged(RuntimeError):
    """transformers no longer has a private name this module relies on."""

    def __init__(self, name: str, detail: str = ""):
        self.attribute = name
        super().__init__(_message(name, detail))


def _version() -> str:
    try:
        import transformers
        return transformers.__version__
    except Exception:   # noqa: BLE001 - the message must still be written
        return "(not importable)"


def _message(name: str, detail: str = "") -> str:
    extra = f" ({detail})" if detail else ""
    return (f"transformers {_version()} no longer has {name}{extra}: {HERE} needs updating "
            f"(written for {WRITTEN_FOR})")


def _get(obj: Any, key: str) -> Any:
    """obj.<PINNED[key].attr>, or InternalsChanged naming it."""
    pin = PINNED[key]
    try:
        return getattr(obj, pin.attr)
    except AttributeError:
        raise InternalsChanged(pin.name) from None


def _set(obj: Any, key: str, value: Any) -> None:
    pin = PINNED[key]
    if not hasattr(obj, pin.attr):   # setting a name transformers no longer reads would silently do nothing
        raise InternalsChanged(pin.name)
    setattr(obj, pin.attr, value)


def _from_module(key: str) -> Any:
    pin = PINNED[key]
    try:
        module = importlib.import_module(pin.module)
    except ImportError as e:
        raise InternalsChanged(pin.name, f"import failed: {e}") from None
    return _get(module, key)


# ------------------------------------------------------------------------------------------- continuous batching
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
        raise InternalsChanged(PINNED[f"{_SERVING_UTILS}.get_response_template"].name,
                               f"import failed: {e}") from None
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
    problems: list[str] = []
    instances: dict[str, Any] = {}
    if manager is not None:
        instances["ContinuousBatchingManager"] = manager
    for pin in PINNED.values():
        try:
            module = importlib.import_module(pin.module)
        except ImportError as e:
            problems.append(_message(pin.name, f"import of {pin.module} failed: {e}"))
            continue
        if not pin.owner:
            if not hasattr(module, pin.attr):
                problems.append(_message(pin.name))
            continue
        cls = getattr(module, pin.owner, None)
        if cls is None:
            problems.append(_message(pin.name, f"{pin.module} has no {pin.owner}"))
            continue
        if pin.how == "class":
            ok = hasattr(cls, pin.attr)
        elif pin.owner in instances:
            ok = hasattr(instances[pin.owner], pin.attr)
        elif pin.owner == "OutputRouter":
            try:
                instances[pin.owner] = cls()
            except Exception as e:   # noqa: BLE001 - a changed constructor is a finding, not a crash
                problems.append(_message(pin.name, f"OutputRouter() failed: {e}"))
                continue
            ok = hasattr(instances[pin.owner], pin.attr)
        else:
            ok = _assigned_in_init(cls, pin.attr)
        if not ok:
            problems.append(_message(pin.name))
    return problems
