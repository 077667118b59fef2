"""The demo's ``streamer.env`` is valid shell: ``set -a; . ./streamer.env; set +a`` (the
README's recipe, which keeps the password off every command line) exports each setting
exactly, whatever characters the password or the paths hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamer.commands.demo_secure import env_file
from streamer.settings import Settings

# The characters a shell would act on, all legal in a URI's password (RFC 3986 sub-delims
# and a percent-escape), and a query with `&`.
URI = "mongodb://streamer:a'b$c&d;e!f*g(h)i=j,k+l~m%40n@127.0.0.1:27017/?replicaSet=rs0&tls=true"


def sourced(file: Path, names: list[str]) -> dict[str, str]:
    """Each variable as ``sh`` sees it after the README's recipe, one NUL-ended value."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    script = 'set -a; . "$1"; set +a; shift; for n; do eval "printf \'%s\\0\' \\"\\$$n\\""; done'
    done = subprocess.run(
        [sh, "-c", script, "sh", str(file), *names],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.stderr == b""
    return dict(zip(names, done.stdout.decode().split("\0")[:-1], strict=True))


def test_sourcing_the_env_file_in_sh_gives_each_value_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "a dir with $pace 'n quotes"
    settings = Settings(
        mongodb_uri=SecretStr(URI),
        database="my app",
        tls=True,
        tls_ca_file=folder / "ca.pem",
        tls_certificate_key_file=folder / "client.pem",
    )
    file = tmp_path / "streamer.env"
    file.write_text("# a comment line, as the demo writes root's URI\n" + env_file(settings))
    expected = {
        "STREAMER_MONGODB_URI": URI,
        "STREAMER_DATABASE": "my app",
        "STREAMER_TLS": "true",
        "STREAMER_TLS_CA_FILE": str(folder / "ca.pem"),
        "STREAMER_TLS_CERTIFICATE_KEY_FILE": str(folder / "client.pem"),
    }
    assert sourced(file, list(expected)) == expected


def test_without_tls_the_env_file_names_only_the_uri_and_database() -> None:
    text = env_file(Settings(mongodb_uri=SecretStr(URI), database="myapp"))
    assert [line.split("=", 1)[0] for line in text.splitlines()] == [
        "STREAMER_MONGODB_URI",
        "STREAMER_DATABASE",
    ]
