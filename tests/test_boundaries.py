"""No `typing.Any` in what one top-level package hands another.

A name that crosses a package boundary (engine -> ui, config -> api, ui -> app.py, ...) is a contract:
its signature is all the caller reads. `Any` there switches the type checker off exactly at the seam
where two halves of the app meet, so these names carry real types: `object` where a value is truly
opaque, a Protocol where the real type lives in a package the callee may not import (DESIGN.md).

The check is a pure AST scan; nothing is imported:
1. every `from <pkg>... import Name` whose top-level package differs from the importer's is a crossing
   (imports inside functions and under TYPE_CHECKING count; relative imports never cross);
   a submodule imported as a name (`from engine.serving import zerogpu`) crosses with each
   `zerogpu.attr` the importer uses;
2. re-exports are followed to where the name is defined (`from sessions import SessionStore` ->
   sessions/store.py);
3. `Any` is looked for in that definition: a function's parameters and return; a class's public
   methods (with `__init__` and friends), the public attributes it annotates (dataclass fields,
   `self.x: T`), and the same for the classes it inherits from in our code; a module-level annotated
   value or type alias.
A failure lists each offender as `module.Name(arg)`, `module.Class.method -> return` or
`module.Class.field`, with the modules that import it.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The app's top-level packages and modules: each is one side of a boundary. tests/ may import
# anything, and bench/ is a client of the engine's internals, not part of the app.
PACKAGES = ("engine", "api", "ui", "sessions", "tuning", "config")
MODULES = ("app", "space_profile")
PUBLIC_DUNDERS = {"__init__", "__call__", "__enter__", "__iter__", "__next__"}
Crossings = dict[tuple[str, str], set[str]]     # (module, name) -> modules of other packages importing it


# ------------------------------------------------------------------------------------ the modules
def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def parse_app() -> dict[str, ast.Module]:
    paths = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    paths += [ROOT / f"{m}.py" for m in MODULES]
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in paths}


def top(module: str) -> str:
    return module.split(".")[0]


def absolute(importer: str, node: ast.ImportFrom) -> str:
    """The module an ImportFrom reads from (`from .store import x` in sessions/__init__.py -> sessions.store)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not (ROOT / Path(*base) / "__init__.py").is_file():   # a plain module: `.` is its package
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def crossings(modules: dict[str, ast.Module]) -> Crossings:
    """Every name one top-level package imports from another, with who imports it."""
    found: Crossings = defaultdict(set)
    for importer, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            source = node.module or ""
            if top(source) == top(importer) or top(source) not in modules:
                continue                       # same package, or a third-party import
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule not in modules:
                    found[(source, alias.name)].add(importer)
                    continue
                local = alias.asname or alias.name   # a module imported as a name: what is used of it
                for use in ast.walk(tree):
                    if isinstance(use, ast.Attribute) and isinstance(use.value, ast.Name) and use.value.id == local:
                        found[(submodule, use.attr)].add(importer)
    return found


def define(modules: dict[str, ast.Module], module: str, name: str, depth: int = 0) -> tuple[str, ast.stmt] | None:
    """(defining module, statement) of `name` as `module` sees it at its top level, following
    `from x import name` (also `import ... as`); None for names that are not ours."""
    tree = modules.get(module)
    if tree is None or depth > 10:
        return None
    found = None
    for node in tree.body:                     # the last binding wins, as at run time
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = module, node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            found = module, node
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found = module, node
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    found = define(modules, absolute(module, node), alias.name, depth + 1)
    return found


# ----------------------------------------------------------------------------------- finding Any
def mentions_any(annotation: ast.expr | None) -> bool:
    """`Any` or `typing.Any` anywhere in an annotation, string annotations included; the words inside
    `Literal[...]` are values, not types."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    if isinstance(annotation, ast.Attribute):
        return annotation.attr == "Any" or mentions_any(annotation.value)
    if isinstance(annotation, ast.Constant):
        if not isinstance(annotation.value, str):
            return False
        try:                                   # "ChatEngine | Any" is an annotation too
            return mentions_any(ast.parse(annotation.value.strip(), mode="eval").body)
        except SyntaxError:
            return False                       # plain text
    if isinstance(annotation, ast.Subscript) and _name_of(annotation.value) == "Literal":
        return False
    return any(mentions_any(child) for child in ast.iter_child_nodes(annotation) if isinstance(child, ast.expr))


def _name_of(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def is_public(name: str) -> bool:
    return not name.startswith("_") or name in PUBLIC_DUNDERS


def function_hits(fn: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> list[str]:
    a = fn.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
    hits = [f"{prefix}({p.arg})" for p in params if mentions_any(p.annotation)]
    if mentions_any(fn.returns):
        hits.append(f"{prefix} -> return")
    return hits


def class_hits(cls: ast.ClassDef, prefix: str) -> list[str]:
    hits = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if is_public(node.target.id) and mentions_any(node.annotation):
                hits.append(f"{prefix}.{node.target.id}")      # a dataclass field, a class attribute
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if is_public(node.name):
            hits += function_hits(node, f"{prefix}.{node.name}")
        for inner in ast.walk(node):                            # self.x: T, in any method
            target = getattr(inner, "target", None)
            if (isinstance(inner, ast.AnnAssign) and isinstance(target, ast.Attribute)
                    and _name_of(target.value) == "self" and is_public(target.attr)
                    and mentions_any(inner.annotation)):
                hits.append(f"{prefix}.{target.attr}")
    return hits


def hits(modules: dict[str, ast.Module], module: str, name: str, depth: int = 0) -> list[str]:
    """Every `Any` in the interface of `module.name`."""
    found = define(modules, module, name)
    if found is None or depth > 10:
        return []
    where, node = found
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return function_hits(node, f"{where}.{node.name}")
    if isinstance(node, ast.ClassDef):
        inherited = [h for base in node.bases if isinstance(base, ast.Name)
                     for h in hits(modules, where, base.id, depth + 1)]
        return class_hits(node, f"{where}.{node.name}") + inherited
    if isinstance(node, ast.AnnAssign):        # a module-level value: `LIMITS: dict[str, Any] = ...`
        return [f"{where}.{name}"] if mentions_any(node.annotation) else []
    if isinstance(node, ast.Assign):           # a type alias: `Json = dict[str, Any]`
        return [f"{where}.{name}"] if mentions_any(node.value) else []
    return []


def any_at_boundaries() -> list[str]:
    modules = parse_app()
    importers_of: dict[str, set[str]] = defaultdict(set)   # one line per offender, whichever way it is imported
    for (module, name), importers in crossings(modules).items():
        for hit in hits(modules, module, name):
            importers_of[hit] |= importers
    return [f"{hit}    (imported by {', '.join(sorted(importers))})" for hit, importers in sorted(importers_of.items())]


# ----------------------------------------------------------------------------------------- tests
def test_no_any_across_package_boundaries():
    found = any_at_boundaries()
    assert not found, (f"typing.Any in {len(found)} place(s) of names imported across packages; give each its "
                       "real type (object if truly opaque, a Protocol if the type lives in a higher package):\n  "
                       + "\n  ".join(found))


def test_the_scan_sees_the_boundaries():
    """A scan that looks at nothing would pass too: the crossings we know of must be found."""
    modules = parse_app()
    found = crossings(modules)
    for expected in [("engine.requests", "ChatService"), ("config", "AppConfig"), ("sessions", "SessionStore"),
                     ("engine.serving.zerogpu", "enabled"), ("ui.owners", "Owners")]:
        assert expected in found, expected
    assert define(modules, "sessions", "SessionStore")[0] == "sessions.store"     # a re-export followed
    assert define(modules, "api", "build_api")[0] == "api.routes"


def test_mentions_any_catches_every_spelling():
    def ann(text: str) -> ast.expr:
        return ast.parse(text, mode="eval").body

    for text in ["Any", "typing.Any", "dict[str, Any]", "'Any | None'", "Callable[..., Any]", "list['Any']",
                 "Optional[t.Any]"]:
        assert mentions_any(ann(text)), text
    for text in ["object", "AnyStr", "Mapping[str, object]", "Literal['Any']", "'Company'", "'a note'"]:
        assert not mentions_any(ann(text)), text


def test_a_planted_any_is_reported():
    """The whole chain on a tiny tree: a re-exported class whose method takes Any, imported by another package."""
    modules = {
        "low": ast.parse("from low.impl import Door\n"),
        "low.impl": ast.parse("from typing import Any\nclass Base:\n    def open(self, key: Any) -> None: ...\n"
                              "class Door(Base):\n    size: int\n    def __init__(self, x: 'Any') -> None:\n"
                              "        self.note: Any = None\n"),
        "high": ast.parse("def f():\n    from low import Door\n"),
    }
    found = crossings(modules)
    assert found == {("low", "Door"): {"high"}}
    assert sorted(hits(modules, "low", "Door")) == ["low.impl.Base.open(key)", "low.impl.Door.__init__(x)",
                                                    "low.impl.Door.note"]
