"""Hostile tenants against the real provider daemon: each attack runs as a leased workload through the chain, the
tenant's CLI and the process runtime's sandbox, and each test checks that the attack failed *and* that the provider
and another tenant's lease (the victim, deployed by another wallet) kept working.

A workload reports what it tried as one ``RESULT {...}`` line in its logs: each attempt is ``refused: <Error>`` or
``ok: <what it got>``; then it sleeps until the test closes its lease.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import gridmint
from gridmint.client.wallet import open_wallet
from gridmint.market.provider.sandbox.identity import FIRST_UID
from gridmint.market.tenant import for_lease
from tests.support.market_network import LiveMarket, ProviderProcess, live_market
from tests.support.processes import processes_of
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sandbox")]

LEASE_DISK_MB = 64
VICTIM = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("victim from " + self.path).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("listening on", os.environ["PORT"], "uid", os.getuid(), flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
PRELUDE = """
import glob, json, os, signal, socket, sys, time
results = {}
def attempt(name, action):
    try:
        results[name] = "ok: " + repr(action())[:300]
    except Exception as error:
        results[name] = "refused: " + type(error).__name__
def report():
    print("RESULT " + json.dumps(results), flush=True)
"""
SLEEP = "\ntime.sleep(600)\n"


@dataclass
class Victim:
    lease: int
    endpoint: str
    port: int
    uid: int


@dataclass
class Arena:
    market: LiveMarket
    provider: ProviderProcess
    victim: Victim
    node_port: int

    def deploy(self, script: str, *, cpu: float = 0.5, memory: int = 256, ports: list[int] | None = None,
               env: dict[str, str] | None = None, helpers: dict[str, str] | None = None) -> int:
        """A lease whose service ``attack`` runs ``script``; ``helpers`` are more services (started before it)."""
        services = {name: {"command": ["python3", "-c", PRELUDE + code]} for name, code in (helpers or {}).items()}
        services["attack"] = {"command": ["python3", "-c", PRELUDE + script], "env": env or {}, "ports": ports or []}
        file = self.market.write(f"attack-{time.monotonic_ns()}.yaml", json.dumps({
            "version": 1, "services": services,
            "resources": {"cpu": cpu, "memory": memory}, "price": {"max_per_block": "0.001"}, "deposit": "5"}))
        return int(self.market.deploy(file)["lease"])

    def logs(self, lease: int, wallet: str = "tenant") -> str:
        return str(self.market.run("deploy", "logs", str(lease), "--wallet", wallet, "--tail", "200")["logs"])

    def result(self, lease: int) -> dict[str, str]:
        text = wait_for(lambda: next((line for line in self.logs(lease).splitlines() if "[attack] RESULT " in line),
                                  None), f"lease {lease} to report")
        return dict(json.loads(text.split("RESULT ", 1)[1]))

    def status(self, lease: int, wallet: str = "tenant") -> dict[str, Any]:
        """The lease's status as its provider reports it to the tenant (signed call; also once the lease ended)."""
        key = open_wallet(wallet, self.market.wallets).coldkey("pw")
        with self.market.client() as client, for_lease(client, key, lease) as provider:
            return provider.status(lease)

    def close(self, lease: int) -> None:
        self.market.run("deploy", "close", str(lease), "--wallet", "tenant")

    def everyone_else_works(self) -> None:
        """The provider daemon runs and answers, and the victim's lease runs and answers through the proxy."""
        assert self.provider.process.poll() is None, self.provider.log()
        assert httpx.get(f"{self.provider.url}/health", timeout=10).json()["ok"] is True
        for path in ("a", "b", "c"):
            answer = httpx.get(self.victim.endpoint + path, timeout=10)
            assert (answer.status_code, answer.text) == (200, f"victim from /{path}")
        assert self.status(self.victim.lease, "victim")["services"]["web"]["state"] == "running"


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    with pytest.MonkeyPatch.context() as monkeypatch, \
            live_market(tmp_path_factory.mktemp("sandbox"), monkeypatch, names=("tenant", "victim", "alpha")) as market:
        provider = market.start_provider("alpha", "--cpu", "4", "--memory", "4096", "--lease-disk",
                                         str(LEASE_DISK_MB), "--withdraw-every", "0")
        file = market.write("victim.yaml", json.dumps({
            "version": 1, "services": {"web": {"command": ["python3", "-c", VICTIM], "ports": [8080]}},
            "resources": {"cpu": 0.5, "memory": 256}, "price": {"max_per_block": "0.001"}, "deposit": "50"}))
        created = market.run("deploy", "create", str(file), "--wallet", "victim", "--auto-accept", "cheapest",
                             "--bid-wait", "30")
        lease = int(created["lease"])
        logs = wait_for(lambda: market.run("deploy", "logs", str(lease), "--wallet", "victim")["logs"], "the victim")
        words = logs.split()
        victim = Victim(lease, created["status"]["endpoints"]["web"], int(words[words.index("on") + 1]),
                        int(words[words.index("uid") + 1]))
        node_port = int(market.node.url.rsplit(":", 1)[1])
        arena = Arena(market, provider, victim, node_port)
        arena.everyone_else_works()
        yield arena


def _refused(results: dict[str, str]) -> None:
    allowed = {name: outcome for name, outcome in results.items() if not outcome.startswith("refused: ")}
    assert allowed == {}, f"attempts that should have been refused: {allowed}"


def test_a_workload_has_its_own_user_and_sees_nothing_of_the_host(arena: Arena) -> None:
    lease = arena.deploy("""
results["uid"] = os.getuid()
results["root"] = sorted(os.listdir("/"))
results["processes"] = sorted(p for p in os.listdir("/proc") if p.isdigit())
results["env"] = sorted(os.environ)
report()""" + SLEEP)
    seen = arena.result(lease)
    assert FIRST_UID <= int(seen["uid"]) != arena.victim.uid
    assert set(seen["root"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp",
                                 "usr", "run"}, seen["root"]
    assert len(seen["processes"]) <= 3, seen["processes"]  # bubblewrap's init, itself (and a reaped shell at most)
    assert set(seen["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}, seen["env"]
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_read_the_providers_wallets(arena: Arena) -> None:
    wallets = arena.market.wallets
    wallet_file = next(p for p in wallets.rglob("*") if p.is_file())
    data_dir = arena.market.tmp / "provider-alpha"
    lease = arena.deploy(f"""
attempt("list wallets", lambda: os.listdir({str(wallets)!r}))
attempt("read a wallet", lambda: open({str(wallet_file)!r}, "rb").read())
attempt("list the provider's leases", lambda: [n for n in os.listdir({str(data_dir / "leases")!r})
                                              if n != os.path.basename(os.getcwd())] or 1 / 0)
attempt("list /root", lambda: os.listdir("/root"))
attempt("list /home", lambda: os.listdir("/home"))
attempt("read the host's users", lambda: open("/etc/shadow").read())
report()""" + SLEEP)
    _refused(arena.result(lease))
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_read_the_daemons_environment(arena: Arena) -> None:
    daemon = arena.provider.process.pid
    lease = arena.deploy(f"""
attempt("the daemon's environ", lambda: open("/proc/{daemon}/environ", "rb").read())
attempt("the parent's environ", lambda: open("/proc/%d/environ" % os.getppid(), "rb").read()
        if b"GRIDMINT" in open("/proc/%d/environ" % os.getppid(), "rb").read() else 1 / 0)
def any_password():
    for path in glob.glob("/proc/*/environ"):
        try:
            if b"GRIDMINT_PASSWORD" in open(path, "rb").read():
                return path
        except OSError:
            pass
    raise LookupError("no environment holds a password")
attempt("any environ with the password", any_password)
report()""" + SLEEP)
    _refused(arena.result(lease))
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_signal_the_daemon_or_another_lease(arena: Arena) -> None:
    victim_pids = processes_of(arena.victim.uid)
    assert victim_pids
    targets = [arena.provider.process.pid, *victim_pids]
    lease = arena.deploy(f"""
for pid in {targets!r}:
    attempt(f"kill {{pid}}", lambda: os.kill(pid, signal.SIGKILL))
attempt("kill every process it may", lambda: os.kill(-1, signal.SIGKILL))
report()""" + SLEEP)
    results = arena.result(lease)
    # kill(-1) reaches only the workload's own processes: none but itself, which it spares (hence "no such process").
    assert results.pop("kill every process it may") in ("ok: None", "refused: ProcessLookupError")
    _refused(results)
    assert all(pid in processes_of(arena.victim.uid) for pid in victim_pids)
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_read_or_write_another_leases_folder(arena: Arena) -> None:
    victim_folder = arena.market.tmp / "provider-alpha" / "leases" / str(arena.victim.lease)
    victim_disk = Path("/run/gridmint/disks") / f"u{arena.victim.uid}"
    lease = arena.deploy(f"""
for folder in ({str(victim_folder)!r}, {str(victim_disk)!r}):
    attempt("list " + folder, lambda: os.listdir(folder))
    attempt("read " + folder, lambda: open(folder + "/web.log").read())
    attempt("write " + folder, lambda: open(folder + "/planted", "w").write("x"))
attempt("list the disks", lambda: os.listdir("/run/gridmint/disks"))
report()""" + SLEEP)
    _refused(arena.result(lease))
    assert not (victim_disk / "planted").exists()
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_take_another_leases_port(arena: Arena) -> None:
    port = arena.victim.port
    lease = arena.deploy(f"""
import http.server, threading
class Hijack(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "8")
        self.end_headers()
        self.wfile.write(b"hijacked")
servers = []
for host in ("127.0.0.1", "0.0.0.0"):
    attempt("bind " + host, lambda: servers.append(http.server.HTTPServer((host, {port}), Hijack)))
for server in servers:
    threading.Thread(target=server.serve_forever, daemon=True).start()
report()""" + SLEEP)
    results = arena.result(lease)
    # The bind itself succeeds (its own network has that port free) and changes nothing for the victim.
    assert results["bind 127.0.0.1"].startswith("ok")
    for _ in range(5):
        arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_write_the_daemons_code_or_virtualenv(arena: Arena) -> None:
    package = Path(gridmint.__file__).parent
    lease = arena.deploy(f"""
attempt("write the venv", lambda: open({str(Path(sys.prefix) / "pyvenv.cfg")!r}, "a").write("#"))
attempt("write the interpreter", lambda: open({str(Path(sys.executable).resolve())!r}, "ab").write(b"#"))
attempt("write the package", lambda: open({str(package / "__init__.py")!r}, "a").write("#"))
attempt("write the system python", lambda: open("/usr/lib/python3.11/os.py", "a").write("#"))
attempt("create in /usr", lambda: open("/usr/planted", "w"))
report()""" + SLEEP)
    _refused(arena.result(lease))
    arena.everyone_else_works()
    arena.close(lease)


def _host_addresses() -> list[str]:
    """The host's own IPv4 addresses other than loopback (the kernel's local routes)."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    local = {lines[i - 1].split()[-1] for i, line in enumerate(lines) if line.strip() == "/32 host LOCAL"}
    return sorted(a for a in local if not a.startswith("127."))[:4]


def test_a_workload_cannot_reach_the_node_or_any_host_port(arena: Arena) -> None:
    provider_port = int(arena.provider.url.rsplit(":", 1)[1])
    targets = [("127.0.0.1", arena.node_port), ("127.0.0.1", provider_port), ("127.0.0.1", 22),
               *[(address, provider_port) for address in _host_addresses()]]
    lease = arena.deploy(f"""
for host, port in {targets!r}:
    attempt(f"connect {{host}}:{{port}}", lambda: socket.create_connection((host, port), timeout=3).close())
attempt("interfaces", lambda: [n for n in os.listdir("/sys/class/net") if n != "lo"] or 1 / 0)
report()""" + SLEEP)
    _refused(arena.result(lease))
    arena.everyone_else_works()
    arena.close(lease)


def test_a_fork_bomb_stops_at_the_leases_process_limit(arena: Arena) -> None:
    lease = arena.deploy("""
born = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        born += 1
except OSError as error:
    results["stopped"] = type(error).__name__
results["born"] = born
results["uid"] = os.getuid()
report()""" + SLEEP)
    results = arena.result(lease)
    assert results["stopped"] == "BlockingIOError" and 100 < int(results["born"]) < 512
    uid = int(results["uid"])  # (the limit counts the group's tasks; "born" above is what it let the bomb make)
    arena.everyone_else_works()
    arena.close(lease)
    wait_for(lambda: processes_of(uid) == [], "the fork bomb's processes to be gone", timeout_s=30)
    arena.everyone_else_works()


def test_a_memory_bomb_is_killed_alone_and_its_lease_fails_with_the_reason(arena: Arena) -> None:
    lease = arena.deploy("""
print("uid", os.getuid(), flush=True)
hoard = []
while True:
    hoard.append(bytearray(8 * 2**20))
""", memory=64)
    status = wait_for(lambda: (lambda s: s if s["state"] == "stopped" else None)(arena.status(lease)),
                   "the provider to stop the lease")
    assert "went over its memory limit of 64 MB" in status["reason"], status
    with arena.market.client() as client:
        closed = wait_for(lambda: (lambda a: a if not a["open"] else None)(client.query(f"/escrow/account/{lease}")),
                       "the lease to close on chain")
        assert closed["reason"] == "closed by the provider (code 1)", closed  # code 1: a service failed
    assert "went over its memory limit" in arena.provider.log()
    arena.everyone_else_works()


def test_a_workload_cannot_fill_the_disk_beyond_its_quota(arena: Arena) -> None:
    free_before = shutil.disk_usage(arena.market.tmp).free
    lease = arena.deploy("""
def fill(path):
    written = 0
    chunk = b"x" * 2**20
    try:
        with open(path, "wb") as file:
            while written < 2**31:
                file.write(chunk)
                file.flush()
                written += len(chunk)
    except OSError as error:
        return (type(error).__name__, written)
    return ("not stopped", written)
results["folder"] = fill("fill.bin")
results["tmp"] = fill("/tmp/fill.bin")
report()""" + SLEEP)
    results = arena.result(lease)
    for place in ("folder", "tmp"):
        error, written = results[place]
        assert error == "OSError" and written <= LEASE_DISK_MB * 2**20, results
    assert free_before - shutil.disk_usage(arena.market.tmp).free < 2 * LEASE_DISK_MB * 2**20
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_move_to_cores_it_did_not_rent(arena: Arena) -> None:
    cores = sorted(os.sched_getaffinity(0))
    lease = arena.deploy(f"""
results["rented"] = sorted(os.sched_getaffinity(0))
attempt("set every core", lambda: os.sched_setaffinity(0, {cores!r}))
results["after"] = sorted(os.sched_getaffinity(0))
report()""" + SLEEP, cpu=1)
    results = arena.result(lease)
    assert len(results["rented"]) == 1 and results["after"] == results["rented"], results
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_make_a_later_services_sandbox_bind_the_host(arena: Arena) -> None:
    # The first service swaps whatever it can for links to the host's root while the next ones start.
    swap = """
home = os.getcwd()
for name in os.listdir(home) + [".tmp", "tmp", "home"]:
    attempt("swap " + name, lambda: (os.rename(os.path.join(home, name), os.path.join(home, name + ".old"))
                                     if os.path.exists(os.path.join(home, name)) else None,
                                     os.symlink("/", os.path.join(home, name))))
attempt("replace /tmp", lambda: os.rename("/tmp", "/tmp.old"))
""" + SLEEP
    lease = arena.deploy("""
time.sleep(0.5)
attempt("the host's root as /tmp", lambda: [n for n in os.listdir("/tmp") if n in ("etc", "usr", "proc")] or 1 / 0)
attempt("the host's users", lambda: open("/etc/passwd").read())
attempt("write above /tmp", lambda: open("/tmp/../planted-by-a-lease", "w").write("x"))
report()""" + SLEEP, helpers={"swapper": swap})
    results = arena.result(lease)
    _refused(results)
    assert not Path("/planted-by-a-lease").exists()
    arena.everyone_else_works()
    arena.close(lease)


def test_a_workload_cannot_make_a_user_namespace_of_its_own(arena: Arena) -> None:
    lease = arena.deploy("""
import subprocess
def unshare(*flags):
    done = subprocess.run(["unshare", *flags, "true"], capture_output=True)
    if done.returncode:
        raise PermissionError(done.stderr.decode()[:200])
attempt("a user namespace", lambda: unshare("-U"))
attempt("root in a user namespace with a network", lambda: unshare("-Urn"))
attempt("root in a user namespace with mounts", lambda: unshare("-Urm"))
report()""" + SLEEP)
    _refused(arena.result(lease))
    arena.everyone_else_works()
    arena.close(lease)
