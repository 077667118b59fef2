"""One boundary to the driver: only ``streamer.mongo`` imports pymongo, motor or bson."""

from __future__ import annotations

import ast
from pathlib import Path

import streamer

DRIVER_PACKAGES = frozenset({"pymongo", "motor", "bson"})
PACKAGE = Path(streamer.__file__).parent
# demo.py seeds a demo database with its own Motor client; it is not the service.
ALLOWED = frozenset({PACKAGE / "demo.py"})


def driver_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """``file:line: import`` for each import of a driver package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in DRIVER_PACKAGES:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    return found


def test_no_module_outside_streamer_mongo_imports_the_driver() -> None:
    """Service modules use streamer.mongo (and its types re-exports), never the driver."""
    modules = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if PACKAGE / "mongo" not in p.parents and p not in ALLOWED
    ]
    assert len(modules) > 20
    offenders = [line for path in modules for line in driver_imports(path)]
    assert not offenders, "driver imports outside streamer/mongo/:\n" + "\n".join(offenders)


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    """``import x``, ``import x.y`` and ``from x.y import z`` are all caught, with lines."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import bson\nimport os\nfrom pymongo.errors import PyMongoError\nimport motor.core\n"
    )
    assert driver_imports(sample, tmp_path) == [
        "sample.py:1: bson",
        "sample.py:3: pymongo.errors",
        "sample.py:4: motor.core",
    ]
