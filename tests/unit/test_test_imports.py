"""No test module imports another: what tests share lives in ``tests/support/``.

A test module importing another runs (and collects) code it does not own, and ties
the two files' helpers together in ways nobody sees from either. Every
``tests/**/test_*.py`` is parsed, and any import of a ``test_*`` module fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def imported_modules(tree: ast.Module, path: Path) -> list[str]:
    """Every module an import statement in ``path`` names, at any depth (function-level
    ones too). ``from <package> import test_x`` imports the module ``test_x``; a name
    imported from a module (``from tests.support.service import test_settings``) is not
    a module."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.append(base)
            folder = (path.parents[node.level - 1] if node.level else ROOT).joinpath(
                *base.split(".") if base else ()
            )
            if folder.is_dir():  # a package: what it imports are its modules
                names.extend(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
    return names


def is_test_module(name: str) -> bool:
    return any(part.startswith("test_") for part in name.split("."))


def test_the_check_sees_each_way_of_importing_a_test_module() -> None:
    source = (
        "from .test_cli import spawn\n"
        "from . import test_least_privilege\n"
        "import tests.integration.test_ha\n"
        "from tests.support.service import test_settings\n"
        "def f():\n    from tests.integration.test_command import free_port\n"
    )
    here = TESTS / "integration" / "test_example.py"
    found = [n for n in imported_modules(ast.parse(source), here) if is_test_module(n)]
    assert found == [
        "test_cli",
        "test_least_privilege",
        "tests.integration.test_ha",
        "tests.integration.test_command",
    ]


def test_no_test_module_imports_another_test_module() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}: {name}"
        for path in sorted(TESTS.rglob("test_*.py"))
        for name in imported_modules(ast.parse(path.read_text(), str(path)), path)
        if is_test_module(name)
    ]
    assert offenders == [], "import shared helpers from tests/support/ instead"
