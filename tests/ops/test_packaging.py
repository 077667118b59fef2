"""What the mongo-streamer distribution ships: the daemon alone, with its defaults as package data.

mongosim is a separate distribution beside it (mongosim/); neither the wheel, the sdist
nor the image may carry it or its dependencies. Built offline with the locked setuptools.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The distribution is mongo-streamer (the index's "streamer" is someone else's); the import
# package and the command stay streamer.
DISTRIBUTION = "mongo-streamer"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
DIST_INFO = f"mongo_streamer-{VERSION}.dist-info"


def build(kind: str, project: Path, out: Path) -> Path:
    """Build a wheel or sdist of project into out with the virtualenv's setuptools."""
    code = f"import sys; from setuptools import build_meta as b; print(b.build_{kind}(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # the SPDX licence: no deprecations
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(build("wheel", ROOT, tmp_path_factory.mktemp("wheel")))


def metadata(wheel: zipfile.ZipFile) -> str:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return wheel.read(name).decode()


def test_the_wheel_carries_the_daemon_and_no_mongosim(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "streamer/commands/cli.py" in names and "streamer/mongo/client.py" in names
    assert not [n for n in names if "mongosim" in n]
    assert {n.split("/")[0] for n in names} == {"streamer", f"{DIST_INFO}"}


def test_the_wheel_requires_no_crc32c_and_names_one_console_script(
    wheel: zipfile.ZipFile,
) -> None:
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", metadata(wheel), flags=re.M)
    assert "crc32c" not in requires and "mongosim" not in requires
    assert "motor" in requires
    entry_points = wheel.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert re.findall(r"^(\w+) = ", entry_points, flags=re.M) == ["streamer"]


def test_the_distribution_is_mongo_streamer_with_the_package_s_version(
    wheel: zipfile.ZipFile,
) -> None:
    """Free on the package index, and one version: pyproject's is streamer.__version__."""
    from streamer import __version__

    assert re.search(rf"^Name: {DISTRIBUTION}$", metadata(wheel), flags=re.M)
    assert re.search(rf"^Version: {re.escape(__version__)}$", metadata(wheel), flags=re.M)
    assert __version__ == VERSION


def test_the_wheel_has_an_spdx_licence_and_is_typed(wheel: zipfile.ZipFile) -> None:
    assert re.search(r"^License-Expression: Apache-2.0$", metadata(wheel), flags=re.M)
    assert "streamer/py.typed" in wheel.namelist()


def test_the_default_config_and_schema_ship_as_package_data(wheel: zipfile.ZipFile) -> None:
    """streamer/defaults/ holds config/'s files byte for byte: one source, no copy."""
    for name in ("streamer.yaml", "schema.yaml"):
        assert wheel.read(f"streamer/defaults/{name}") == (ROOT / "config" / name).read_bytes()


def test_the_sdist_carries_no_mongosim(tmp_path: Path) -> None:
    with tarfile.open(build("sdist", ROOT, tmp_path)) as sdist:
        names = sdist.getnames()
    assert any(n.endswith("/streamer/commands/cli.py") for n in names)
    assert any(n.endswith("/config/schema.yaml") for n in names)
    assert not [n for n in names if "mongosim" in n]


def test_mongosim_builds_as_its_own_distribution(tmp_path: Path) -> None:
    with zipfile.ZipFile(build("wheel", ROOT / "mongosim", tmp_path)) as mongosim:
        names = mongosim.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "mongosim = mongosim.cli:main" in mongosim.read(entry_points).decode()
    assert "mongosim/server.py" in names and "mongosim/py.typed" in names
    assert not [n for n in names if n.startswith("streamer")]


def test_the_image_installs_only_the_streamer_distribution() -> None:
    """The Dockerfile copies streamer's sources and config/, never mongosim/ or tests."""
    text = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(.*) \S+$", text, flags=re.M)
    sources = {p for line in copied for p in line.split()}
    assert sources == {
        "requirements.txt",
        "requirements-build.txt",
        "pyproject.toml",
        "README.md",
        "streamer/",
        "config/",
    }
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"mongosim", "tests", ".tools"} <= set(ignored)
