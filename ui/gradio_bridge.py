"""Every private name of gradio (and of `spaces`, its ZeroGPU hook) we touch, in one place (issue 22).

ui/ and app.py reach gradio's internals only through the functions here: an upgrade that drops one fails
`missing_names()` (tests/test_bridges.py) naming it, and a call into a missing one raises InternalsChanged
naming the attribute instead of an AttributeError somewhere in an event handler.

Written against gradio 6.31.0 and spaces 0.51.3.
"""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from engine.pins import Bridge, Pin, pin_table

WRITTEN_FOR = {"gradio": "6.31.0", "spaces": "0.51.3"}
HERE = "ui/gradio_bridge.py"
LAUNCH_CELLS = ("task", "task_args", "task_kwargs")   # the closure of spaces' one_launch hook


PINNED: dict[str, Pin] = pin_table(
    Pin("gradio", "gradio.blocks", "Blocks", "_queue", "instance",
        "the Queue blocks.queue() builds: its idle polling is slowed (ui/quiet.py)"),
    Pin("gradio", "gradio.queueing", "Queue", "sleep_when_free", "instance",
        "the scheduler loop's sleep with no event queued (1 ms by default)"),
    Pin("gradio", "gradio.queueing", "Queue", "progress_update_sleep_when_free", "instance",
        "the progress loop's sleep with no event queued (10 ms by default)"),
    Pin("gradio", "gradio.queueing", "Queue", "default_concurrency_limit", "instance",
        "the limit an event queue made from now on takes for events with the default limit (set after a switch)"),
    Pin("gradio", "gradio.queueing", "Queue", "event_queue_per_concurrency_id", "instance",
        "the event queues made so far, by concurrency id: the chat's \"generate\" follows the model serving"),
    Pin("gradio", "gradio.queueing", "EventQueue", "concurrency_limit", "instance",
        "how many events of one concurrency id run at once, read at every scheduling pass"),
    Pin("gradio", "gradio.block_function", "BlockFunction", "concurrency_limit", "instance",
        "an event's own limit, or \"default\""),
    Pin("gradio", "gradio.block_function", "BlockFunction", "concurrency_id", "instance",
        "the event queue an event waits in"),
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
)
BRIDGE = Bridge(HERE, WRITTEN_FOR, PINNED)


_get = BRIDGE.get


# ------------------------------------------------------------------------------------------------------- gradio
def queue_of(blocks: gr.Blocks) -> Any:
    """Blocks._queue: the gradio.queueing.Queue that blocks.queue() built (its idle sleeps are tuned)."""
    queue = _get(blocks, "Blocks._queue")
    _get(queue, "Queue.sleep_when_free")
    _get(queue, "Queue.progress_update_sleep_when_free")
    return queue


def set_default_concurrency(blocks: gr.Blocks, limit: int) -> None:
    """Events with the default concurrency limit (the chat's "generate") run `limit` at once from now on.

    Gradio makes an event queue per concurrency id at its first event, with the default limit then, and reads
    EventQueue.concurrency_limit at every scheduling pass: so the default and every queue already made for
    such an id are set (an id shared with events of their own limit keeps the lowest, as Gradio does). Events
    running now finish; a lower limit starts no new one until they are fewer."""
    queue = queue_of(blocks)
    _get(queue, "Queue.default_concurrency_limit")
    queue.default_concurrency_limit = limit
    made = _get(queue, "Queue.event_queue_per_concurrency_id")
    own: dict[str, list[Any]] = {}
    for fn in blocks.fns.values():     # public (no underscore): the events, with their concurrency
        limit_of_fn = _get(fn, "BlockFunction.concurrency_limit")
        own.setdefault(_get(fn, "BlockFunction.concurrency_id"), []).append(limit_of_fn)
    for concurrency_id, limits in own.items():
        if "default" not in limits or concurrency_id not in made:
            continue
        event_queue = made[concurrency_id]
        _get(event_queue, "EventQueue.concurrency_limit")
        event_queue.concurrency_limit = min(limit if v == "default" else v for v in limits if v is not None)


def concurrency_limit(blocks: gr.Blocks, concurrency_id: str) -> int | None:
    """How many events of `concurrency_id` run at once now: its event queue's limit once made, else the default
    (what it would be made with)."""
    queue = queue_of(blocks)
    made = _get(queue, "Queue.event_queue_per_concurrency_id")
    if concurrency_id in made:
        return _get(made[concurrency_id], "EventQueue.concurrency_limit")
    return _get(queue, "Queue.default_concurrency_limit")


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
        raise BRIDGE.changed(PINNED_CLOSURE[missing[0]],
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
    objects: dict[str, Any] = {}

    def real(owner: str) -> Any:
        if owner not in objects:
            if owner == "Blocks":
                objects[owner] = blocks if blocks is not None else gr.Blocks().queue()
            elif owner == "EventData":
                objects[owner] = event if event is not None else gr.EventData(None, {})
            elif owner == "EventQueue":
                from gradio.queueing import EventQueue

                objects[owner] = EventQueue("probe", 1)
            elif owner == "BlockFunction":
                with gr.Blocks() as probe:
                    gr.Button().click(lambda: None)
                objects[owner] = next(iter(probe.fns.values()))
            elif owner == "Queue":   # the given blocks' queue; a fresh one's if it has none (reported apart)
                queue = getattr(real("Blocks"), "__dict__", {}).get("_queue")
                objects[owner] = queue if queue is not None else vars(gr.Blocks().queue()).get("_queue")
        return objects[owner]

    problems, on_objects = BRIDGE.missing_static()
    for key in on_objects:
        pin = PINNED[key]
        if pin.how == "instance":
            try:
                obj = real(pin.owner)
            except Exception as e:   # noqa: BLE001 - a changed constructor is a finding, not a crash
                problems.append(BRIDGE.message(key, f"building a {pin.owner} failed: {e}"))
                continue
            ok = obj is not None and pin.attr in getattr(obj, "__dict__", {})
        else:
            ok = pin.attr in _closure_names(BRIDGE.owner_of(key)[0])
        if not ok:
            problems.append(BRIDGE.message(key))
    return problems
