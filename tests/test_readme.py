"""README's module table names every module of the layers, each with its one sentence, so a new
engineer finds what each file is for (and a module added without its row fails here)."""
from __future__ import annotations

import re

from dram.paths import ROOT

LAYERS = ("ui", "review", "training", "dram", "store")


def table_rows() -> dict[str, str]:
    rows = re.findall(r"^\| `([^`]+\.py)` \| (.+?) \|$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    return dict(rows)


def test_every_module_has_its_row_with_a_sentence() -> None:
    modules = ["app.py", *(str(p.relative_to(ROOT)) for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))
                           if p.name != "__init__.py" and "migrations" not in p.parts)]
    rows = table_rows()
    assert [m for m in modules if m not in rows] == []
    assert [m for m in modules if len(rows[m].split()) < 5 or not rows[m].rstrip().endswith(".")] == []


def test_no_row_names_a_module_that_is_gone() -> None:
    assert [m for m in table_rows() if not (ROOT / m).exists()] == []
