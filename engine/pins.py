"""What the two bridges to library internals share (engine/hf_bridge.py for transformers, ui/gradio_bridge.py for
gradio and spaces): a pinned private name, the error that names it, and the look-ups that raise that error
instead of an AttributeError far from the cause. Each bridge keeps its own table and its own checks of
instances; the shape of a pin, the message and the static checks live here once.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Mapping


@dataclass(frozen=True)
class Pin:
    """One (object, attribute) a bridge relies on.

    how: "class"    - hasattr on the class (methods, class defaults, properties)
         "instance" - set on instances by the library: checked on a real object, read from its own __dict__
         "module"   - a module-level name (the module is private, or the name is)
         "closure"  - a free variable of a function nested in `owner` (a module-level function)
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


def pin_table(*pins: Pin) -> dict[str, Pin]:
    """Pins keyed by their name, as the bridges' functions look them up."""
    return {p.name: p for p in pins}


class InternalsChanged(RuntimeError):
    """A library no longer has a private name a bridge relies on; `attribute` is the pinned name."""

    def __init__(self, message: str, attribute: str):
        self.attribute = attribute
        super().__init__(message)


def installed_version(library: str) -> str:
    try:
        return version(library)
    except PackageNotFoundError:
        return "(not installed)"


@dataclass(frozen=True)
class Bridge:
    """One bridge module's pins, with the look-ups that name a missing one."""
    here: str                         # the bridge's file, named in every message
    written_for: Mapping[str, str]    # library -> the version the bridge was written against
    pins: Mapping[str, Pin]

    def message(self, key: str, detail: str = "") -> str:
        pin = self.pins.get(key)
        library = pin.library if pin else next(iter(self.written_for))
        extra = f" ({detail})" if detail else ""
        return (f"{library} {installed_version(library)} no longer has {pin.name if pin else key}{extra}: "
                f"{self.here} needs updating (written for {library} {self.written_for[library]})")

    def changed(self, key: str, detail: str = "") -> InternalsChanged:
        pin = self.pins.get(key)
        return InternalsChanged(self.message(key, detail), pin.name if pin else key)

    def get(self, obj: object, key: str) -> object:
        """obj.<pin's attr>, or InternalsChanged naming it. An instance attribute is read from the object's
        own __dict__ where it has one: some objects (gradio's EventData) answer every other name themselves."""
        pin = self.pins[key]
        own = getattr(obj, "__dict__", None)
        if pin.how == "instance" and not isinstance(obj, type) and isinstance(own, dict):
            if pin.attr in own:
                return own[pin.attr]
            raise self.changed(key)
        try:
            return getattr(obj, pin.attr)
        except AttributeError:
            raise self.changed(key) from None

    def set(self, obj: object, key: str, value: object) -> None:
        """Setting a name the library no longer reads would silently do nothing: InternalsChanged instead."""
        self.get(obj, key)
        setattr(obj, self.pins[key].attr, value)

    def from_module(self, key: str) -> object:
        pin = self.pins[key]
        try:
            module = importlib.import_module(pin.module)
        except ImportError as e:
            raise self.changed(key, f"import failed: {e}") from None
        return self.get(module, key)

    def owner_of(self, key: str) -> tuple[object | None, str | None]:
        """(the pin's class, function or module; None) or (None, the message saying why it is not there)."""
        pin = self.pins[key]
        try:
            module = importlib.import_module(pin.module)
        except ImportError as e:
            return None, self.message(key, f"import of {pin.module} failed: {e}")
        if not pin.owner:
            return module, None
        owner = getattr(module, pin.owner, None)
        if owner is None:
            return None, self.message(key, f"{pin.module} has no {pin.owner}")
        return owner, None

    def missing_static(self) -> tuple[list[str], list[str]]:
        """(messages for the class and module pins that are missing, keys of the pins checked on objects:
        instances and closures, whose owner exists; the bridge checks those on real objects)."""
        problems: list[str] = []
        on_objects: list[str] = []
        for key, pin in self.pins.items():
            owner, why = self.owner_of(key)
            if why is not None:
                problems.append(why)
            elif pin.how in ("class", "module"):
                if not hasattr(owner, pin.attr):
                    problems.append(self.message(key))
            else:
                on_objects.append(key)
        return problems, on_objects
