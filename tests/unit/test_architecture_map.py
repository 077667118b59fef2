"""The README's architecture map names every module of streamer."""

from __future__ import annotations

import re
from pathlib import Path

import streamer

PACKAGE = Path(streamer.__file__).parent
README = PACKAGE.parent / "README.md"


def streamer_modules() -> list[str]:
    """Every module's path relative to streamer/, less ``__init__`` and ``__main__``."""
    return sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name not in {"__init__.py", "__main__.py"}
    )


def architecture_map() -> str:
    """The code block under the README's ``## Architecture`` heading."""
    section = README.read_text().split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```\n", 2)[1]


def named(module: str, text: str) -> bool:
    """``module`` (``core/keys.py``) appears whole: not as the tail of a longer path."""
    return re.search(rf"(?<![\w/.]){re.escape(module)}(?![\w/])", text) is not None


def test_the_readme_map_names_every_streamer_module() -> None:
    modules = streamer_modules()
    assert len(modules) > 40  # the walk found the package, subpackages included
    text = architecture_map()
    missing = [m for m in modules if not named(m, text)]
    assert not missing, f"README's architecture map leaves out: {missing}"


def test_a_module_counts_as_named_only_by_its_whole_path() -> None:
    text = "  runtime/verify.py   ...\n  settings.py  ...\n"
    assert named("runtime/verify.py", text)
    assert named("settings.py", text)
    assert not named("verify.py", text)  # only the tail of runtime/verify.py
    assert not named("commands/verify.py", text)
