"""The floors of the package (ARCHITECTURE.md, "Layers"): a module may import its own floor
and those below it, never one above. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import geneface

ROOT = Path(geneface.__file__).parent

# Floor of each top-level package or module of geneface (lowest first).
FLOORS = {
    "__init__": 0, "errors": 0, "hookspecs": 0, "core": 0,
    "models": 1, "nerf": 1, "speech": 1, "metrics": 1, "postprocess": 1, "synth": 1, "processing": 1,
    "training": 2,
    "plugins": 3, "registry": 3,
    "app": 4,
    "cli": 5, "__main__": 5,
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, package: str):
    """(line, imported geneface module) for every import in the file at `path`."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else [f"geneface.{package}"]
        else:
            continue
        for name in names:
            if name == "geneface" or name.startswith("geneface."):
                yield node.lineno, name


def test_every_part_of_the_package_has_a_floor():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.is_file() and p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert parts == set(FLOORS), f"give each a floor here and in ARCHITECTURE.md: {sorted(parts ^ set(FLOORS))}"


def test_no_import_runs_up_a_floor():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        package = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for line, name in imports_of(path, package):
            target = _part(name)
            if FLOORS[target] > FLOORS[package]:
                upward.append(f"geneface/{rel}:{line} ({package}, floor {FLOORS[package]}) imports {name} "
                              f"(floor {FLOORS[target]})")
    assert upward == [], "\n".join(upward)


def test_every_package_docstring_names_its_modules():
    """A reader starts at a package's docstring: it names (in backticks) every module and
    sub-package in the folder."""
    missing = {}
    for init in sorted(ROOT.rglob("__init__.py")):
        folder = init.parent
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        parts = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
        parts += [p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]
        absent = sorted(m for m in parts if f"`{m}`" not in doc)
        if absent:
            missing[str(folder.relative_to(ROOT.parent))] = absent
    assert missing == {}


def _module_imports(path: Path) -> set[str]:
    """The geneface modules `path` imports at run time (inside functions too; imports under
    `if TYPE_CHECKING:` are for annotations only and run never). `from PKG import MOD` counts
    as an import of the module PKG.MOD."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_file(sub) else node.module)
    return {name for name in found if name.startswith("geneface.") and _module_file(name)}


def _module_file(name: str):
    base = ROOT.parent.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def test_no_two_modules_import_each_other():
    """A circle of imports (data -> lazy_clips -> data) means neither module can be read on
    its own; the shared piece belongs in a module of its own below both (issue 34)."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = _module_imports(path) - {name}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    circles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and reaches(b, a))
    assert circles == [], "\n".join(circles)


def test_only_the_command_line_makes_the_registry():
    """`get_registry()` is called by the CLI (one per command) and at the top of a corpus
    worker process (app.process.process_clip); everything else is handed the registry, with
    no `registry or get_registry()` fallback (issue 34)."""
    allowed = {ROOT / "app" / "process.py"}
    callers = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent.name == "cli" or path in allowed or path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "get_registry":
                callers.append(f"geneface/{path.relative_to(ROOT)}:{node.lineno}")
    assert callers == [], "\n".join(callers)
