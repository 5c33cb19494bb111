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
    ("dram/nn", {"dram.nn", "dram.data", "dram.errors", "dram.files"}),  # the network, not its use
])
def test_dram_sub_packages_import_only_the_layers_below_them(package: str, allowed: set[str]) -> None:
    """Imports for type hints only (`if TYPE_CHECKING:`) do not load anything and are allowed."""
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        hints = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) not in hints and isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dram."):
                assert any(node.module == a or node.module.startswith(a + ".") for a in allowed), \
                    f"{path.relative_to(ROOT)} imports {node.module}"
