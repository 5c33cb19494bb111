"""The folders are the layers: `store` is persistence and never loads the model's stack, `dram` never
loads the UI toolkit, and `store` does not reach up into the review package that sits on it."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from dram.paths import ROOT


def _modules(package: str) -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in (ROOT / package.replace(".", "/")).rglob("*.py") if "migrations" not in p.parts and p.name != "__main__.py")


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


@pytest.mark.parametrize("package, forbidden", [("store", {"torch", "gradio"}), ("dram", {"gradio"}),
                                                ("dram.data", {"torch", "gradio"}), ("review", {"gradio"})])
def test_a_package_imports_without_the_layers_above_it(package: str, forbidden: set[str]) -> None:
    assert _loaded_after_import(_modules(package)) & forbidden == set()


@pytest.mark.parametrize("package, allowed", [
    ("store", {"store", "dram"}),  # dram only for the span type and input errors
    ("dram", {"dram"}),
    ("review", {"review", "store", "dram"}),
    ("training", {"training", "dram", "store", "review"}),
])
def test_a_package_imports_only_from_the_packages_below_it(package: str, allowed: set[str]) -> None:
    ours = {"app", "dram", "store", "review", "training", "ui", "benchmarks", "tests"}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in ours or top in allowed, f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("package, allowed", [
    ("dram/data", {"dram.data", "dram.errors"}),  # what a listing is: below the network
    # the network, not its use; the model carries its checkpoint's familiarity reference, a numpy-only
    # module that imports nothing of dram (the loop test below keeps it so)
    ("dram/nn", {"dram.nn", "dram.data", "dram.errors", "dram.files", "dram.familiarity"}),
])
def test_dram_sub_packages_import_only_the_layers_below_them(package: str, allowed: set[str]) -> None:
    """Imports for type hints only (`if TYPE_CHECKING:`) count too: they load nothing, but a layer typed
    on the one above it depends on it all the same."""
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dram."):
                assert any(node.module == a or node.module.startswith(a + ".") for a in allowed), \
                    f"{path.relative_to(ROOT)} imports {node.module}"


OURS = ("app", "ui", "review", "training", "dram", "store", "benchmarks")


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports anywhere in its text: at the top, inside a function, or
    for type hints only (`from x import name` counts as x.name when that is a module, else as x)."""
    files = {}
    for package in OURS:
        paths = [ROOT / "app.py"] if package == "app" else (ROOT / package).rglob("*.py")
        for path in paths:
            if "migrations" not in path.parts:
                files[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path

    def module_of(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        names = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        graph[module] = {found for name in names if (found := module_of(name)) not in (None, module)}
    return graph


def _a_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """One chain of imports that comes back to where it started, or None."""
    state: dict[str, str] = {}  # "open" while its imports are followed, then "done"

    def follow(module: str, chain: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return chain[chain.index(target):] + [module, target] if target in chain else [module, target]
            if target not in state and (loop := follow(target, [*chain, module])):
                return loop
        state[module] = "done"
        return None

    return next((loop for module in sorted(graph) if module not in state and (loop := follow(module, []))), None)


def test_no_import_loop_not_even_through_type_hints_or_deferred_imports() -> None:
    """What `if TYPE_CHECKING:` or an import inside a function hides from the import system is still a
    loop between modules: each needs the other to be understood."""
    loop = _a_loop(_import_graph())
    assert loop is None, "import loop: " + " -> ".join(loop)


def test_the_loop_finder_finds_a_loop() -> None:
    assert _a_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _a_loop({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
