"""Every private name of gradio (and of `spaces`, its ZeroGPU hook) we touch, in one place (issue 22).

ui/ and app.py reach gradio's internals only through the functions here: an upgrade that drops one fails
`missing_names()` (tests/test_bridges.py) naming it, and a call into a missing one raises InternalsChanged
naming the attribute instead of an AttributeError somewhere in an event handler.

Written against gradio 6.31.0 and spaces 0.51.3.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

WRITTEN_FOR = {"gradio": "6.31.0", "spaces": "0.51.3"}
HERE = "ui/gradio_bridge.py"
LAUNCH_CELLS = ("task", "task_args", "task_kwargs")   # the closure of spaces' one_launch hook


@dataclass(frozen=True)
class Pin:
    """One (object, attribute) this module relies on.

    how: "class"    - hasattr on the class
         "instance" - set on instances by gradio: checked on a real object (passed in, or built here)
         "module"   - a module-level name
         "closure"  - a free variable of the `launch` function spaces' one_launch puts on gr.Blocks
    """
    library: str
    module: str
    owner: str        # class name inside `module`, the function for "closure", "" for a module-level name
    attr: str
    how: str
    why: str

    @property
    def name(self) -> str:
        if self.how == "closure":
            return f"{self.module}.{self.owner}.<launch closure>.{self.attr}"
        return f"{self.owner}.{self.attr}" if self.owner else f"{self.module}.{self.attr}"


PINNED: dict[str, Pin] = {p.name: p for p in (
    Pin("gradio", "gradio.blocks", "Blocks", "_queue", "instance",
        "the Queue blocks.queue() builds: its idle polling is slowed (ui/quiet.py)"),
    Pin("gradio", "gradio.queueing", "Queue", "sleep_when_free", "instance",
        "the scheduler loop's sleep with no event queued (1 ms by default)"),
    Pin("gradio", "gradio.queueing", "Queue", "progress_update_sleep_when_free", "instance",
        "the progress loop's sleep with no event queued (10 ms by default)"),
    Pin("gradio", "gradio.blocks", "Blocks", "has_launched", "instance",
        "mount_gradio_app leaves it False, and with it Gradio skips checking that a sent file path was uploaded"),
    Pin("gradio", "gradio.blocks", "Blocks", "validate_inputs", "class",
        "overridden by ui/arity.py for a clear too-few-values message; a rename would silently skip it"),
    Pin("gradio", "gradio.events", "EventData", "_data", "instance",
        "the whole payload of a custom JS event (ui/assets/chat_list.js), not only declared fields"),
    Pin("spaces", "spaces.zero.gradio", "", "_orig_launch", "module",
        "gr.Blocks.launch before spaces hooked it: put back once its start-up task ran (app.py)"),
    *(Pin("spaces", "spaces.zero.gradio", "one_launch", cell, "closure",
          "the ZeroGPU start-up task spaces runs from launch, which this app never calls (app.py)")
      for cell in LAUNCH_CELLS),
)}


class InternalsChanged(RuntimeError):
    """gradio (or spaces) no longer has a private name this module relies on."""

    def __init__(self, name: str, detail: str = ""):
        self.attribute = name
        super().__init__(_message(PINNED[name] if name in PINNED else None, name, detail))


def _version(library: str) -> str:
    try:
        from importlib.metadata import version
        return version(library)
    except Exception:   # noqa: BLE001 - the message must still be written
        return "(not installed)"


def _message(pin: Pin | None, name: str, detail: str = "") -> str:
    library = pin.library if pin else "gradio"
    extra = f" ({detail})" if detail else ""
    return (f"{library} {_version(library)} no longer has {name}{extra}: {HERE} needs updating "
            f"(written for {library} {WRITTEN_FOR[library]})")


def _get(obj: Any, key: str) -> Any:
    """obj.<PINNED[key].attr> (looked up in the instance's own dict when it is an instance attribute: EventData
    answers every other name from _data itself), or InternalsChanged naming it."""
    pin = PINNED[key]
    if pin.how == "instance" and not isinstance(obj, type):
        own = getattr(obj, "__dict__", {})
        if pin.attr in own:
            return own[pin.attr]
        raise InternalsChanged(key)
    try:
        return getattr(obj, pin.attr)
    except AttributeError:
        raise InternalsChanged(key) from None


# ------------------------------------------------------------------------------------------------------- gradio
def queue_of(blocks: gr.Blocks) -> Any:
    """Blocks._queue: the gradio.queueing.Queue that blocks.queue() built (its idle sleeps are tuned)."""
    queue = _get(blocks, "Blocks._queue")
    _get(queue, "Queue.sleep_when_free")
    _get(queue, "Queue.progress_update_sleep_when_free")
    return queue


def mark_launched(blocks: gr.Blocks) -> None:
    """Blocks.has_launched = True: mounted apps then check that a file path a client sends was uploaded."""
    _get(blocks, "Blocks.has_launched")
    blocks.has_launched = True


def event_data(evt: Any) -> dict:
    """EventData._data: the whole payload of a custom JS event; {} when the payload is not a dict."""
    data = _get(evt, "EventData._data")
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------------------------------- spaces
def take_zerogpu_startup() -> Callable[[], None]:
    """The start-up task spaces hooked onto gr.Blocks.launch (one_launch's closure cells task, task_args,
    task_kwargs), with gr.Blocks.launch put back to spaces.zero.gradio._orig_launch; call the result once."""
    from spaces.zero import gradio as zero_gradio

    hook = gr.Blocks.launch
    cells = dict(zip(hook.__code__.co_freevars, hook.__closure__ or ()))
    missing = [n for n in LAUNCH_CELLS if n not in cells]
    if missing:
        raise InternalsChanged(PINNED_CLOSURE[missing[0]],
                               "gr.Blocks.launch is not spaces' start-up hook: is this a ZeroGPU Space with "
                               "the pinned spaces version from requirements.txt?")
    task, task_args, task_kwargs = (cells[n].cell_contents for n in LAUNCH_CELLS)
    gr.Blocks.launch = _get(zero_gradio, "spaces.zero.gradio._orig_launch")
    return lambda: task(*task_args, **task_kwargs)


PINNED_CLOSURE = {p.attr: p.name for p in PINNED.values() if p.how == "closure"}


# ------------------------------------------------------------------------------------------------------ checks
def _closure_names(function: Any) -> set[str]:
    """Free variables of the nested functions defined in `function` (without calling it)."""
    names: set[str] = set()
    for const in getattr(getattr(function, "__code__", None), "co_consts", ()):
        names.update(getattr(const, "co_freevars", ()))
    return names


def missing_names(blocks: gr.Blocks | None = None, event: Any = None) -> list[str]:
    """One message per pinned name the installed gradio/spaces lacks; [] when all are there.

    Instance attributes are checked on real objects: `blocks` (after .queue()) and `event` when given, else
    a fresh gr.Blocks().queue() and gr.EventData(None, {}) built here."""
    problems: list[str] = []
    objects: dict[str, Any] = {}

    def real(owner: str) -> Any:
        if owner not in objects:
            if owner == "Blocks":
                objects[owner] = blocks if blocks is not None else gr.Blocks().queue()
            elif owner == "EventData":
                objects[owner] = event if event is not None else gr.EventData(None, {})
            elif owner == "Queue":   # the given blocks' queue; a fresh one's if it has none (reported apart)
                queue = getattr(real("Blocks"), "__dict__", {}).get("_queue")
                objects[owner] = queue if queue is not None else vars(gr.Blocks().queue()).get("_queue")
        return objects[owner]

    for key, pin in PINNED.items():
        try:
            module = importlib.import_module(pin.module)
        except ImportError as e:
            problems.append(_message(pin, key, f"import of {pin.module} failed: {e}"))
            continue
        owner = getattr(module, pin.owner, None) if pin.owner else module
        if owner is None:
            problems.append(_message(pin, key, f"{pin.module} has no {pin.owner}"))
            continue
        if pin.how == "instance":
            try:
                obj = real(pin.owner)
            except Exception as e:   # noqa: BLE001 - a changed constructor is a finding, not a crash
                problems.append(_message(pin, key, f"building a {pin.owner} failed: {e}"))
                continue
            ok = obj is not None and pin.attr in getattr(obj, "__dict__", {})
        elif pin.how == "closure":
            ok = pin.attr in _closure_names(owner)
        else:
            ok = hasattr(owner, pin.attr)
        if not ok:
            problems.append(_message(pin, key))
    return problems
