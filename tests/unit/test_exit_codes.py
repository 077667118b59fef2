"""``streamer --help`` and the README's "Exit codes" table list the same codes, and they
are the codes the code uses (streamer.runtime.shutdown's constants included)."""

from __future__ import annotations

import re
from pathlib import Path

from streamer.commands.cli import EXIT_CODES, build_parser
from streamer.runtime.shutdown import FORCED_STOP, INTERRUPTED

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_exit_codes() -> list[int]:
    section = README.read_text().split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return [int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)]


def test_help_and_readme_list_the_same_exit_codes() -> None:
    codes = [code for code, _ in EXIT_CODES]
    assert codes == readme_exit_codes()
    assert {FORCED_STOP, INTERRUPTED} <= set(codes)


def test_help_names_every_exit_code_with_its_meaning() -> None:
    epilog = " ".join((build_parser().epilog or "").split())
    for code, meaning in EXIT_CODES:
        assert f"{code} {meaning}" in epilog
    assert "130 interrupted" in epilog and "resync interrupted" not in epilog
