"""How a config section is declared: a frozen pydantic dataclass whose errors are one line naming the key.

pydantic checks the values (types strict: `true` is not a number, "8" is not an integer; limits with
Field(ge=..., le=...); choices with Literal). `to_config_error` turns its ValidationError into the
one line a user reads, e.g. 'engine.cpu_dtype: "fp8" is not allowed; choose one of bfloat16, float32'.
They stay dataclasses (not BaseModel) so `dataclasses.replace(cfg, ...)` keeps working and is validated
like a file. A field's own check (a BeforeValidator raising ConfigError, as engine.precision has) keeps
its line as written.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any, Literal

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
OUT_OF_RANGE = ("greater_than_equal", "less_than_equal", "greater_than", "less_than")
_NOTHING = object()


class ConfigError(ValueError):
    """One line that names the key, the bad value and what is allowed."""


def section(prefix: str):
    """Class decorator: a frozen pydantic dataclass refusing unknown keys, whose construction (from a
    dict, in code, or by dataclasses.replace) raises ConfigError lines under `prefix` ('engine')."""
    def build(cls: type) -> type:
        cls = pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))(cls)
        validate = cls.__init__

        @functools.wraps(validate)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            names = [f.name for f in dataclasses.fields(cls)]
            if len(args) > len(names) or set(names[:len(args)]) & kwargs.keys():
                raise TypeError(f"{cls.__name__}: a setting given twice, or too many given by position")
            given = dict(zip(names, args)) | kwargs  # by name, so an error names the key
            try:
                validate(self, **given)
            except ValidationError as exc:
                raise to_config_error(exc, cls, prefix, given) from None

        cls.__init__ = __init__
        cls.__config_prefix__ = prefix
        return cls
    return build


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__config_prefix__")


def to_config_error(exc: ValidationError, cls: type, prefix: str, given: Any) -> ConfigError:
    """The one line for pydantic's first complaint; unknown keys first, as they explain the rest."""
    errors = exc.errors()
    for e in errors:  # a section's own cross-key check (__post_init__) already wrote its line
        if isinstance((e.get("ctx") or {}).get("error"), ConfigError):
            return e["ctx"]["error"]
    errors.sort(key=lambda e: e["type"] not in UNKNOWN)
    located = [(_locate(cls, given, e["loc"]), e) for e in errors]
    (names, owner, name, value), first = located[0]
    path = ".".join([prefix] * bool(prefix) + names) or "config"
    if first["type"] in UNKNOWN:
        keys = [f.name for f in dataclasses.fields(owner)]
        noun = "section" if all(is_section(t) for t in typing.get_type_hints(owner).values()) else "key"
        return ConfigError(f"{path}: unknown {noun}; allowed {noun}s: {', '.join(keys)}")
    if name is None:
        return ConfigError(f"{path}: {first['msg']}")
    if first["type"] == "missing":
        return ConfigError(f"{path}: required")
    kinds = {e["type"] for where, e in located if where[0] == names}
    return ConfigError(_explain(path, value, owner, name, kinds))


def _locate(cls: type, given: Any, loc: tuple) -> tuple[list[str], type, str | None, Any]:
    """Walk an error's loc through nested sections: (key names, the section holding the key, the key
    if it is a field of it, the value given for it). Union labels and list indexes after the key are
    dropped: the message is about the whole value."""
    names: list[str] = []
    owner, value = cls, given
    for part in loc:
        names.append(str(part))
        value = value.get(part, _NOTHING) if isinstance(value, dict) else _NOTHING
        hints = typing.get_type_hints(owner)
        if part not in hints:
            return names, owner, None, value
        if not (is_section(hints[part]) and isinstance(value, dict)):
            return names, owner, part, value
        owner = hints[part]
    return names, owner, None, value


def _explain(path: str, value: Any, owner: type, name: str, kinds: set[str]) -> str:
    tp = typing.get_type_hints(owner)[name]
    shown = _show(value)
    if is_section(tp):
        return f"{path}: expected an object of settings, got {shown}"
    words, choices = _literals(tp)
    lo, hi = bounds(owner, name)
    if kinds & set(OUT_OF_RANGE) and _is_number(value):
        return f"{path}: {value} is out of range; allowed {lo} to {hi}"
    if choices and not words:
        return f"{path}: {shown} is not allowed; choose one of {', '.join(choices)}"
    return f"{path}: {shown} is not allowed; expected {allowed(owner, name) if words else type_name(tp)}"


def _show(value: Any) -> str:
    if value is _NOTHING:
        return "nothing"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # built in code: a Path, an object
        return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _literals(tp: Any) -> tuple[tuple, tuple]:
    """(words, choices): a Literal alone gives choices; a Literal beside a number type gives words
    that the number option also accepts (max_concurrent's "auto")."""
    if typing.get_origin(tp) is Literal:
        return (), typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        words = tuple(w for a in args if typing.get_origin(a) is Literal for w in typing.get_args(a))
        if words and any(a in (int, float) for a in args):
            return words, ()
    return (), ()


def _choice_or_list(tp: Any) -> tuple[tuple, tuple] | None:
    """(choices, list choices) of `Literal[...] | list[Literal[...]]` (engine.precision: a rung or a list of
    rungs), else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    single = [a for a in typing.get_args(tp) if typing.get_origin(a) is Literal]
    lists = [typing.get_args(a)[0] for a in typing.get_args(tp) if typing.get_origin(a) is list]
    if len(single) == 1 and len(lists) == 1 and typing.get_origin(lists[0]) is Literal and len(typing.get_args(tp)) == 2:
        return typing.get_args(single[0]), typing.get_args(lists[0])
    return None


def bounds(owner: type, name: str) -> tuple[Any, Any]:
    """(ge, le) as declared, including those on a union member (Annotated[int, Field(ge=1, le=256)])."""
    info = owner.__pydantic_fields__[name]
    found = list(info.metadata)
    for arg in typing.get_args(info.annotation):
        for meta in getattr(arg, "__metadata__", ()):
            found += getattr(meta, "metadata", [meta])
    lo = next((m.ge for m in found if hasattr(m, "ge")), None)
    hi = next((m.le for m in found if hasattr(m, "le")), None)
    return lo, hi


def type_name(tp: object) -> str:
    """A JSON user's word for a type: string, integer, number, true/false, list of ..., X or null."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is Literal:
        return type_name(type(typing.get_args(tp)[0]))
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, str(tp))


def allowed(owner: type, name: str) -> str:
    """What a key accepts, in words: '"auto" or integer, 1 to 256', 'auto / fp16', 'integer, 1 to 65535'."""
    tp = typing.get_type_hints(owner)[name]
    words, choices = _literals(tp)
    lo, hi = bounds(owner, name)
    either = _choice_or_list(tp)
    if either:
        return f"{' / '.join(map(str, either[0]))}, or an ordered list of {' / '.join(map(str, either[1]))}"
    if words:
        number = "integer" if int in typing.get_args(tp) else "number"
        return " or ".join([json.dumps(w) for w in words] + [f"{number}, {lo} to {hi}"])
    if choices:
        return " / ".join(map(str, choices))
    if lo is not None:
        return f"{type_name(tp)}, {lo} to {hi}"
    return type_name(tp)


def describe(cls: type, prefix: str) -> list[tuple[str, str, str, str]]:
    """(key, default as JSON, allowed, help) for every key of a section, in declaration order."""
    rows = []
    for name, info in cls.__pydantic_fields__.items():
        default = info.get_default(call_default_factory=True)
        rows.append((f"{prefix}.{name}", json.dumps(default, ensure_ascii=False), allowed(cls, name),
                     info.description or ""))
    return rows
