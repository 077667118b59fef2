"""PyMongo's own specification suites against mongosim: ``make conformance``.

Fetches PyMongo's sdist (the version locked in requirements-dev.txt) through pip into
``conformance-cache/``, unpacks it once, then runs each suite, sync and async, against a
fresh ``mongosim --port 0`` child process (``DB_IP``/``DB_PORT`` point PyMongo's test
harness at it): three members (``--members 3``) for the suites that need secondaries
(``MEMBERS``), one for the rest. pytest's junit XML is counted; every failure is given a
root cause from ``mongosim/conformance-causes.toml``; tests kept out of scope on purpose
are deselected through ``mongosim/conformance-skips.toml`` (the plugin
``conformance_plugin.py``, never by editing PyMongo's tests). Prints a table and writes
``conformance-results.json``.

    .venv/bin/python scripts/conformance.py [--suite NAME ...] [--mode sync|async] [--members N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "conformance-cache"
SKIPS = ROOT / "mongosim" / "conformance-skips.toml"
CAUSES = ROOT / "mongosim" / "conformance-causes.toml"
RESULTS = ROOT / "conformance-results.json"
SUITES = {
    "change streams": "test_change_stream.py",
    "transactions (unified)": "test_transactions_unified.py",
    "retryable writes (unified)": "test_retryable_writes_unified.py",
    "retryable reads (unified)": "test_retryable_reads_unified.py",
    "CRUD (unified)": "test_crud_unified.py",
    "session": "test_session.py",
    "cursor": "test_cursor.py",
    "collection": "test_collection.py",
    "bulk": "test_bulk.py",
}
# Suites with tests that route an operation to a secondary, run against a three-member
# set. The transactions tests expect the driver's "read preference in a transaction must
# be primary", which the driver raises only after it has selected a secondary; collection
# reads a w:3 write from a secondary; bulk holds a secondary back with stopReplProducer;
# CRUD sends $out/$merge aggregates to a secondary. The rest run against one member, where
# PyMongo's harness skips its tests that need secondaries (and start-up is cheaper).
MEMBERS = {"transactions (unified)": 3, "collection": 3, "bulk": 3, "CRUD (unified)": 3}
# The oplog (in entries) of each member of a three-member run. bulk's test_numerous_inserts
# writes 100,100 documents in one command, more than mongosim's default oplog of 100,000:
# its secondaries, which apply between commands, would find their newest entry gone from
# the primary's oplog and fall off it (mongod's "too stale"). mongod's oplog is at least
# 990 MB, which holds ten times that many small entries.
REPLICA_OPLOG_SIZE = 1_000_000
MODES = ("sync", "async")
SUITE_TIMEOUT_S = 1200
TEST_TIMEOUT_S = 120


@dataclass
class Failure:
    test: str
    cause: str
    message: str


@dataclass
class SuiteResult:
    suite: str
    mode: str
    members: int = 1
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    deselected: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def rate(self) -> float:
        ran = self.passed + self.failed
        return self.passed / ran if ran else 1.0


def pymongo_version() -> str:
    match = re.search(r"^pymongo==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.M)
    if match is None:
        sys.exit("requirements-dev.txt locks no pymongo version")
    return match.group(1)


def fetch_sdist(version: str) -> Path:
    """The unpacked sdist, downloaded through pip and unpacked the first time only."""
    tree = CACHE / f"pymongo-{version}"
    if (tree / "test" / "__init__.py").exists():
        return tree
    CACHE.mkdir(exist_ok=True)
    archive = CACHE / f"pymongo-{version}.tar.gz"
    if not archive.exists():
        print(f"==> fetching the PyMongo {version} sdist through pip", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-binary", ":all:", f"pymongo=={version}", "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return tree


class MongoSimChild:
    """``mongosim --port 0 --members N`` as a child process; the port is the first host's
    in its ready line (member 0, the first primary: PyMongo's harness discovers the rest)."""

    def __init__(self, members: int = 1) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.members = members
        self.port = 0

    def __enter__(self) -> MongoSimChild:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mongosim",
                "--port",
                "0",
                "--members",
                str(self.members),
                *(["--oplog-size", str(REPLICA_OPLOG_SIZE)] if self.members > 1 else []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(r"mongosim ready mongodb://[^:]+:(\d+)[,/]", line)
        if match is None:
            self.__exit__()
            raise RuntimeError(f"mongosim did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


Cause = tuple["re.Pattern[str] | None", "re.Pattern[str] | None", str]


def load_causes() -> list[Cause]:
    causes: list[Cause] = []
    for entry in tomllib.loads(CAUSES.read_text())["cause"]:
        test = re.compile(entry["test"]) if "test" in entry else None
        message = re.compile(entry["message"], re.S) if "message" in entry else None
        causes.append((test, message, entry["cause"]))
    return causes


def classify(test: str, message: str, causes: list[Cause]) -> str:
    for test_re, message_re, cause in causes:
        if (test_re is None or test_re.search(test)) and (
            message_re is None or message_re.search(message)
        ):
            return cause
    return "unclassified"


def run_suite(
    tree: Path, suite: str, mode: str, members: int, causes: list[Cause], output_stem: str
) -> SuiteResult:
    folder = "test" if mode == "sync" else "test/asynchronous"
    path = f"{folder}/{SUITES[suite]}"
    xml = CACHE / "junit" / output_stem / f"{mode}-{SUITES[suite]}.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.unlink(missing_ok=True)
    result = SuiteResult(suite, mode, members)
    started = time.monotonic()
    with MongoSimChild(members) as sim:
        env = {
            **os.environ,
            "DB_IP": "127.0.0.1",
            "DB_PORT": str(sim.port),
            "PYTHONPATH": str(ROOT / "scripts"),
            "CONFORMANCE_SKIPS": str(SKIPS),
        }
        cmd = [sys.executable, "-m", "pytest", path, "-q", "-p", "conformance_plugin",
               f"--junitxml={xml}", f"--timeout={TEST_TIMEOUT_S}", "-o", "log_cli=false",
               "--no-header", "-p", "no:cacheprovider"]  # fmt: skip
        log = xml.with_suffix(".log")
        with log.open("w") as out:
            try:
                subprocess.run(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                               timeout=SUITE_TIMEOUT_S, check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                result.failures.append(Failure(path, "suite timed out", f"{SUITE_TIMEOUT_S}s"))
    result.seconds = round(time.monotonic() - started, 1)
    if not xml.exists():
        result.failures.append(Failure(path, "no junit report", log.read_text()[-2000:]))
        result.failed += 1
        return result
    count_junit(xml, result, causes)
    match = re.search(r"(\d+) deselected", log.read_text())
    result.deselected = int(match.group(1)) if match else 0
    return result


def recount(
    suite: str, mode: str, members: int, causes: list[Cause], output_stem: str
) -> SuiteResult:
    """A suite's result from the junit report and log an earlier run left."""
    xml = CACHE / "junit" / output_stem / f"{mode}-{SUITES[suite]}.xml"
    result = SuiteResult(suite, mode, members)
    if not xml.exists():
        result.failures.append(Failure(str(xml), "no junit report", ""))
        result.failed += 1
        return result
    count_junit(xml, result, causes)
    log = xml.with_suffix(".log")
    match = re.search(r"(\d+) deselected", log.read_text()) if log.exists() else None
    result.deselected = int(match.group(1)) if match else 0
    return result


def count_junit(xml: Path, result: SuiteResult, causes: list[Cause]) -> None:
    for case in ET.parse(xml).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = [child for child in case if child.tag in ("failure", "error", "skipped")]
        if not outcome:
            result.passed += 1
        elif outcome[0].tag == "skipped":
            result.skipped += 1  # xfail included, as pytest reports it
        elif outcome[0].tag == "error" and any(c.tag != "error" for c in outcome[1:]):
            continue  # a teardown error after a result already counted
        else:
            message = (outcome[0].get("message") or "").split(", full error:")[0]
            result.failed += 1
            result.failures.append(Failure(test, classify(test, message, causes), message[:300]))


def print_table(results: list[SuiteResult]) -> None:
    head = (
        f"{'suite':<28} {'mode':<5} {'members':>7} {'passed':>6} {'failed':>6} {'skipped':>7} "
        f"{'deselected':>10} {'rate':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.suite:<28} {r.mode:<5} {r.members:>7} {r.passed:>6} {r.failed:>6} "
              f"{r.skipped:>7} {r.deselected:>10} {r.rate:>7.1%}")  # fmt: skip
    causes = Counter(f.cause for r in results for f in r.failures)
    if causes:
        print("\nfailures by root cause:")
        for cause, n in causes.most_common():
            print(f"  {n:>4}  {cause}")
        print("\nfailures:")
        for r in results:
            for f in r.failures:
                print(f"  [{r.mode}] {f.test}: {f.cause}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: all")
    parser.add_argument("--mode", choices=MODES, action="append", help="default: both")
    parser.add_argument(
        "--members",
        type=int,
        help="every suite against this many members (default: 3 for the suites in MEMBERS, "
        "1 for the rest)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="recount and reclassify the last run's junit reports without running anything",
    )
    args = parser.parse_args()
    tree = fetch_sdist(pymongo_version())
    causes = load_causes()
    results: list[SuiteResult] = []
    for suite in args.suite or SUITES:
        members = args.members or MEMBERS.get(suite, 1)
        for mode in args.mode or MODES:
            print(f"==> {suite} ({mode}, {members} member{'s' if members > 1 else ''})", flush=True)
            if args.report_only:
                results.append(recount(suite, mode, members, causes, args.output.stem))
            else:
                results.append(run_suite(tree, suite, mode, members, causes, args.output.stem))
            r = results[-1]
            print(f"    {r.passed} passed, {r.failed} failed, {r.skipped} skipped, "
                  f"{r.deselected} deselected in {r.seconds}s", flush=True)  # fmt: skip
    print()
    print_table(results)
    args.output.write_text(
        json.dumps([{**asdict(r), "rate": round(r.rate, 4)} for r in results], indent=2) + "\n"
    )
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
