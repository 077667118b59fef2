"""mongosim's architecture map (DESIGN.md) names every module, so it stays true as modules
come and go."""

from __future__ import annotations

import re
from pathlib import Path

import mongosim

PACKAGE = Path(mongosim.__file__).parent
DESIGN = PACKAGE / "DESIGN.md"


def _modules() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}


def test_the_design_map_names_every_module() -> None:
    named = set(re.findall(r"`([a-z_]+)\.py`", DESIGN.read_text(encoding="utf-8")))
    assert sorted(_modules() - named) == []


def test_the_design_map_names_no_module_that_is_gone() -> None:
    named = set(re.findall(r"^\| [^|]+ \| `([a-z_]+)\.py` \|", DESIGN.read_text(), re.M))
    assert named, "the map's table rows name one module each"
    assert sorted(named - _modules()) == []
