"""One line for a YAML file that does not parse: the settings' and the schema's alike."""

from __future__ import annotations

from pathlib import Path

import yaml


def yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """``file:line:column: invalid YAML: problem``, one line (PyYAML's own message is
    several, ending ``in "<unicode string>", line 3, column 30``)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: invalid YAML: {problem}"
