"""The operations an operator runs, under the README's role against mongosim with
``--auth`` and TLS (client certificates required), each as the ``streamer`` command in a
child process: bootstrap as a privileged user then ``run`` as the role, HA takeover,
resync (the command's and the service's own), a certificate for another host, and the
demo (``make run AUTH=1 TLS=1``). The README's "TLS" section names these tests.

The ``secured`` server and the role's user come from ``tests/support/secured.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
from pathlib import Path
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.commands import role
from tests.certs import make_certs_for_another_host
from tests.support.cli import (
    cli_env,
    free_port,
    inserts_applied,
    json_events,
    plain_lines,
    read_lines,
    spawn,
    streamer,
    without_module,
)
from tests.support.model import Traffic, drive, expected_totals, totals_differences
from tests.support.secured import (  # noqa: F401 - fixtures
    DATABASE,
    PASSWORD,
    Secured,
    driver_fixture,
    secured_fixture,
)
from tests.support.service import caught_up, run_service
from tests.support.service_process import ServiceProcess, until_owned_by

ROOT_PASSWORD = "rootpw"  # the secured fixture's root user (made by the localhost exception)
TTL_S = 2.0


def tls_env(secured: Secured) -> dict[str, str]:
    """The README's TLS settings, as the environment of a ``streamer`` process."""
    return {
        "STREAMER_TLS": "true",
        "STREAMER_TLS_CA_FILE": str(secured.certs.ca),
        "STREAMER_TLS_CERTIFICATE_KEY_FILE": str(secured.certs.client),
    }


def env_as(secured: Secured, user: str, password: str, **extra: str) -> dict[str, str]:
    """``streamer`` as ``user`` over TLS against the secured server."""
    return cli_env(secured.user_uri(user, password), DATABASE, **tls_env(secured), **extra)


async def exact_totals(db: AsyncIOMotorDatabase[Any]) -> list[str]:
    """How user_totals differ from a recomputation from orders (empty: exact)."""
    orders = await db.orders.find().to_list(None)
    return totals_differences(expected_totals(orders), await db.user_totals.find().to_list(None))


async def verified_as_the_role(secured: Secured, driver: str) -> None:
    code, out, err = await streamer(
        env_as(secured, "streamer", PASSWORD, STREAMER_DRIVER=driver), "verify"
    )
    assert code == 0, out + err
    assert all(line.endswith(" 0 drifted") for line in out.splitlines()), out
    assert PASSWORD not in out + err


# -- step 3: bootstrap as a privileged user, `run` as the role, HA takeover ---------------


async def test_bootstrap_as_root_then_services_as_the_role_hand_over_without_loss(
    secured: Secured, driver: str
) -> None:
    """`streamer bootstrap` as root; two `streamer run` processes as the role without its
    bootstrap row (STREAMER_BOOTSTRAP_ON_START=false, as the README advises); the owner
    is SIGKILLed mid-traffic and the standby takes both streams within the lease TTL;
    then a third starts and the owner is stopped (SIGTERM), handing over before its leases
    could expire; totals and alerts exact and `streamer verify` clean, as the role."""
    await secured.add_service_user(role.privileges(DATABASE, bootstrap=False))
    db: AsyncIOMotorDatabase[Any] = secured.root[DATABASE]

    booted, out, err = await streamer(env_as(secured, "root", ROOT_PASSWORD), "bootstrap")
    assert booted == 0, out + err
    assert ROOT_PASSWORD not in out + err
    # The schema's unique index, which the role (without its bootstrap row) cannot make.
    assert "one_open_alert_per_product" in await db.stock_alerts.index_information()

    def instance(name: str, **settings: str) -> ServiceProcess:
        return ServiceProcess(
            secured.user_uri("streamer", PASSWORD),
            DATABASE,
            instance_id=name,
            lease_ttl_s=TTL_S,
            driver=driver,
            bootstrap_on_start="false",
            tls="true",
            tls_ca_file=secured.certs.ca,
            tls_certificate_key_file=secured.certs.client,
            **settings,
        )

    # b's info lines say it released its leases (a few dozen lines: the pipe holds them).
    a = instance("a")
    b = instance("b", log_level="INFO", http_port=str(free_port()))
    c = instance("c", http_port=str(free_port()))
    traffic = Traffic(db, random.Random(14))
    await a.start()
    stopped: list[tuple[int, str]] = []
    try:
        await until_owned_by(db, "a", within_s=30)  # before b starts: a owns both
        # a's first-start resync rebuilds the alerts from the products' state, not their
        # history: traffic before it ends would be transitions no alert records.
        await caught_up(db, within_s=60)
        await b.start()
        await drive(traffic, 150)
        await b.until_standing_by()  # else b's start-up would count against the TTL
        await a.kill()
        takeover = asyncio.create_task(until_owned_by(db, "b", within_s=3 * TTL_S))
        await drive(traffic, 150)
        await takeover
        # A rolling update: c starts as standby, b is told to stop (SIGTERM) and hands
        # its leases over on the way out, so c owns both sooner than b's leases expire.
        await c.start()
        await drive(traffic, 100)
        await c.until_standing_by()  # else c's start-up would count against the handover
        # A handover, not an expiry: within one TTL. Measured 0.68-0.70 s from the
        # SIGTERM's send to c owning both (2 runs, with other suites on the 2-core
        # machine); the 2 s TTL is about 3 times that, and a lease left to expire would
        # take at least the TTL.
        handover = asyncio.create_task(until_owned_by(db, "c", within_s=TTL_S))
        stopped.append(await b.stop())
        await handover
        released = [e for e in json_events(stopped[0][1]) if e["event"] == "lease.released"]
        assert sorted(e["stream"] for e in released) == ["inventory", "orders"], released
        await drive(traffic, 100)
        await caught_up(db, within_s=60)
    finally:
        await a.kill()
        for standby in (b, c):
            if standby.proc is not None and standby.proc.returncode is None:
                stopped.append(await standby.stop())
    assert len(stopped) == 2, stopped
    for code, err in stopped:
        assert code == 0, err[-3000:]
        assert PASSWORD not in err
        errors = [e for e in json_events(err) if e["level"] in ("error", "critical")]
        assert not errors, err[-3000:]
    assert await exact_totals(db) == []
    assert await traffic.alert_differences() == []
    await verified_as_the_role(secured, driver)


# -- step 3: resync, by the running owner and by the command alone -------------------------


RESYNCED_BY = re.compile(r"^orders: resynced by (\S+) ")


async def test_resync_as_the_role_is_done_by_the_owner_and_then_by_the_command_alone(
    secured: Secured, driver: str
) -> None:
    """The service's first-start resync and a requested one run as the role; with the
    service stopped, `streamer resync --fresh` as the role rebuilds alone. Exact after
    each, with writes in between."""
    await secured.add_service_user(role.privileges(DATABASE))
    db: AsyncIOMotorDatabase[Any] = secured.root[DATABASE]

    async def add_orders(n: int, user: str) -> None:
        await db.orders.insert_many(
            [{"user_id": f"{user}{i % 7}", "amount": 1 + i % 5, "status": "completed"}
             for i in range(n)]
        )  # fmt: skip

    await add_orders(300, "u")
    env = env_as(secured, "streamer", PASSWORD, STREAMER_DRIVER=driver, STREAMER_BATCH_SIZE="50")
    async with run_service(secured.settings(driver, batch_size=50)) as service:
        assert await exact_totals(db) == []  # the service's own (first-start) resync
        writes = asyncio.create_task(add_orders(40, "w"))
        code, out, err = await streamer(env, "resync", "--stream", "orders")
        await writes
        assert code == 0, out + err
        last = RESYNCED_BY.match(out.splitlines()[-1])
        assert last is not None and last[1] == service.instance_id, out
        await caught_up(db)
    assert await exact_totals(db) == []

    await add_orders(20, "late")
    await db.user_totals.update_one({"_id": "u1"}, {"$set": {"total": 0}})  # drift to undo
    code, out, err = await streamer(env, "resync", "--stream", "orders", "--fresh")
    assert code == 0, out + err
    assert out.splitlines()[-1].startswith("orders: resynced; streaming resumes at "), out
    assert PASSWORD not in out + err
    assert await exact_totals(db) == []
    await verified_as_the_role(secured, driver)


# -- step 5: a server certificate issued for another host ---------------------------------


async def test_a_server_certificate_for_another_host_is_one_error(
    private_mongosim: Any, tmp_path: Path
) -> None:
    """The CA is right but the certificate names another host: one line that says so and
    what to check, exit 1, the password withheld. STREAMER_TLS_ALLOW_INVALID_CERTIFICATES
    (a throw-away server's escape hatch) reaches the driver and lets it through."""
    certs = make_certs_for_another_host(tmp_path)
    async with private_mongosim(tls_cert_key_file=certs.server, tls_ca_file=certs.ca) as sim:
        uri = sim.uri.replace("mongodb://", f"mongodb://streamer:{PASSWORD}@", 1)
        env = cli_env(
            uri,
            DATABASE,
            STREAMER_TLS="true",
            STREAMER_TLS_CA_FILE=str(certs.ca),
            STREAMER_TLS_CERTIFICATE_KEY_FILE=str(certs.client),
            STREAMER_SERVER_SELECTION_TIMEOUT_MS="1500",
        )
        code, out, err = await streamer(env, "status")
        anonymous = {**env, "STREAMER_MONGODB_URI": sim.uri}
        unchecked = await streamer(
            {**anonymous, "STREAMER_TLS_ALLOW_INVALID_CERTIFICATES": "true"}, "status"
        )
    assert unchecked[0] == 0, unchecked
    assert unchecked[1].startswith("orders: no checkpoint"), unchecked
    assert code == 1, out + err
    [line] = plain_lines(err)
    assert line.startswith("streamer status: TLS certificate check failed for mongodb://"), line
    assert "IP address mismatch, certificate is not valid for '127.0.0.1'; " in line, line
    assert line.endswith(
        "the server's certificate does not name the host in STREAMER_MONGODB_URI: connect "
        "by a name its subjectAltName lists, or reissue it for this host"
    ), line
    assert PASSWORD not in out + err


# -- step 6: the demo with auth and TLS (make run AUTH=1 TLS=1) -----------------------------


DEMO_LINES = (
    "tls: a throw-away CA, a server and a client certificate in ",
    "mongosim at mongodb://127.0.0.1:",  # ... with --auth TLS
    "user 'root' (role root) created through the localhost exception",
    "bootstrap as 'root': ",
    "user 'streamer' (role 'streamer', the README's least-privilege role) created",
    "settings to run streamer commands as 'streamer' against the demo: ",
    "the service runs as 'streamer', the demo writes as root",
    "database 'myapp' seeded: ",
    "metrics at http://127.0.0.1:",
)
LOGIN = re.compile(r"mongodb://(\w+):([^@]+)@")


async def test_the_demo_with_auth_and_tls_runs_the_service_as_the_role_and_stops_on_ctrl_c() -> (
    None
):
    """`streamer demo --auth --tls`: one line per set-up step, totals flow, the service
    connects as the role's user over TLS, SIGINT ends it with 0; neither password is
    printed or logged, and the keys and passwords are gone afterwards."""
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env["STREAMER_HTTP_PORT"] = str(http_port)
    proc = await spawn(env, "demo", "--port", str(free_port()), "--auth", "--tls", "--keep-logs")
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        seen = await read_lines(
            proc.stdout, lambda line: "metrics at" in line, within_s=60, what="metrics served"
        )
        [settings_line] = [line for line in seen if line.startswith(DEMO_LINES[5])]
        settings_file = Path(settings_line.removeprefix(DEMO_LINES[5]).strip())
        secrets = dict(LOGIN.findall(await asyncio.to_thread(settings_file.read_text)))
        await inserts_applied(http_port, within_s=60)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
    printed = "".join(seen) + out.decode() + err.decode()
    assert len(seen) == 1 + len(DEMO_LINES), printed
    for said, expected in zip(seen[1:], DEMO_LINES, strict=True):
        assert said.startswith(expected), printed
    log_file = Path(seen[0].removeprefix("logs: ").strip())
    assert out.decode().rstrip().endswith(f"stopped\nlogs kept: {log_file}"), printed
    logged = await asyncio.to_thread(log_file.read_text)
    # One directory held it all; --keep-logs kept the log alone.
    assert settings_file.parent == log_file.parent
    assert [p.name for p in log_file.parent.iterdir()] == [log_file.name]
    await asyncio.to_thread(shutil.rmtree, log_file.parent)
    [starting] = [e for e in json_events(logged) if e["event"] == "service.starting"]
    assert starting["uri"].startswith("mongodb://streamer:***@127.0.0.1:"), starting
    assert "tls=true" in starting["uri"], starting
    assert set(secrets) == {"root", "streamer"}, secrets
    for password in secrets.values():
        assert password not in printed + logged


async def test_the_demo_with_tls_but_without_cryptography_says_how_to_install_it() -> None:
    """The certificates need the optional ``mongo-streamer[demo]`` extra, never the
    service's wheel: without it `streamer demo --tls` is its one error line and exit 2,
    before anything is made, started or printed."""
    code, out, err = await without_module("cryptography", "demo", "--port", "0", "--tls")
    assert code == 2, err
    assert err.decode().splitlines() == [
        "streamer demo: --tls needs the cryptography package for its throw-away "
        "certificates: pip install 'mongo-streamer[demo]' (make run installs it)"
    ]
    assert out == b""  # no "logs:" line: no log, no directory
