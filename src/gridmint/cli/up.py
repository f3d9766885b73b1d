"""``gridmint up`` and ``gridmint down``: the whole network on this machine, in one command.

The first ``up`` creates dev wallets (one password, printed: this is a dev network), a devnode with a genesis that
funds them, a text-generation subnet (SmolLM2 through llama.cpp, and a weak miner that echoes the prompt, so that
the validator's weights have something to tell apart), an embedding subnet (wordllama) and a prediction subnet (a
statsmodels forecaster, when statsmodels is installed — ``pip install '.[forecast]'`` — and the naive random walk),
a validator on each, a gateway with a credit line and an API key for a dev consumer (OpenAI's API, and TimeGPT's for
forecasts), a provider offering part of this machine, and the explorer. The text and embedding validators send their
probes through the gateway, as a consumer of their own (the ``prober`` account), so that miners cannot tell them
from customers (``inference/validator/probes.py``); the prediction validator asks its miners directly.
Everything runs as background processes with their logs in ``<data dir>/logs``; ``up`` returns once the gateway
answers and prints how to use it. ``down`` stops them all (validators and miners first, the node last). A later
``up`` with the same data directory resumes: same chain, same wallets, same API key.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from gridmint.chain.app import APP_VERSION
from gridmint.chain.credit import MsgOpenCredit
from gridmint.chain.crypto import parse_address
from gridmint.chain.staking import MsgAddStake
from gridmint.chain.store import DEFAULT_KEEP_RECENT
from gridmint.chain.subnets import MsgCreateSubnet, MsgRegister
from gridmint.cli.output import emit
from gridmint.client.chain_client import ChainClient
from gridmint.client.wallet import Wallet, create_wallet
from gridmint.gateway.keys import request_api_key
from gridmint.node.processes import stop_process_group
from gridmint.node.setup import init_data_dir

DEV_PASSWORD = "gridmint-dev"  # dev wallets only; printed in the summary  # noqa: S105
ROLES = ("owner", "validator", "gateway", "consumer", "prober", "provider")  # prober: the validators' probe account
STATE = "up.json"
PIDS = "pids.json"
MINT = 10**9
SERVED_MODELS = ("smollm2-135m-instruct", "echo", "wordllama-l2_supercat-256")
FORECAST_MODELS = {"statsmodels": "statsmodels-arima", "naive": "naive"}  # subnet 3's backends and their models
SUBNETS = ((1, "text-generation", "chat"), (2, "embedding", "embeddings"), (3, "prediction", "forecasts"))
FIRST_STOPPED = ("explorer", "validator-1", "validator-2", "validator-3")  # then the miners and the rest; _stop_all
LAST_STOPPED = ("provider", "gateway", "node")


def miner_plan(smollm2_miners: int, forecaster: bool = True) -> list[list[Any]]:
    """``[name, netuid, backend]`` for each miner: SmolLM2 ones and the weak echo miner on subnet 1, wordllama on 2,
    on 3 the statsmodels forecaster (``forecaster``: statsmodels is installed) and the naive walk."""
    smol = [[f"smol{i + 1}" if i else "smol", 1, "llama-cpp"] for i in range(smollm2_miners)]
    forecasts = [["forecast", 3, "statsmodels"]] if forecaster else []
    return [*smol, ["weak", 1, "echo"], ["embed", 2, "wordllama"], *forecasts, ["naive", 3, "naive"]]


def statsmodels_installed() -> bool:
    return importlib.util.find_spec("statsmodels") is not None and importlib.util.find_spec("threadpoolctl") is not None


def netuids_of(miners: list[list[Any]]) -> list[int]:
    """The subnets this network runs (one made before subnet 3 existed runs 1 and 2)."""
    return sorted({int(netuid) for _, netuid, _ in miners})


def served_models(miners: list[list[Any]]) -> tuple[str, ...]:
    return (*SERVED_MODELS, *(FORECAST_MODELS[backend] for _, netuid, backend in miners if netuid == 3))


def _set_aside(data_dir: Path) -> None:
    """A local network made by another version of the chain's state machine cannot be resumed by this one (its
    stored records have another shape): move it aside, whole, and start a new one."""
    aside = data_dir.with_name(f"{data_dir.name}.old")
    number = 1
    while aside.exists():
        number += 1
        aside = data_dir.with_name(f"{data_dir.name}.old{number}")
    data_dir.rename(aside)
    _step(f"The network in {data_dir} was made by another version of the chain; it is kept in {aside} and a new "
          "one starts")


def _step(text: str) -> None:
    click.echo(click.style("==> ", fg="green") + text, err=True)


def _wait_http(url: str, what: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise click.ClickException(f"{what} exited; see its log")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise click.ClickException(f"{what} did not answer at {url} within {timeout_s:.0f} s; see its log")


class Launcher:
    def __init__(self, data_dir: Path, ports: dict[str, int]) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids: dict[str, int] = {}
        self.env = {**os.environ, "GRIDMINT_PASSWORD": DEV_PASSWORD, "GRIDMINT_WALLET_DIR": str(data_dir / "wallets"),
                    "GRIDMINT_NODE": self.node_url, "HF_HUB_OFFLINE": "1"}

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['node']}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", *args], stdout=log,
                                       stderr=subprocess.STDOUT, env={**self.env, **(env or {})},
                                       start_new_session=True)
        self.pids[name] = process.pid
        (self.data_dir / PIDS).write_text(json.dumps(self.pids))
        return process


def _wait_for_models(gateway_url: str, models: tuple[str, ...], timeout_s: float) -> None:
    """Until the gateway's directory lists every model (it re-reads the miners' announcements from the chain)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            listed = {m["id"] for m in httpx.get(gateway_url + "/v1/models", timeout=2).json()["data"]}
            if set(models) <= listed:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise click.ClickException(f"the gateway did not list {', '.join(models)} within {timeout_s:.0f} s; see the logs")


def _first_time(data_dir: Path, names: list[str]) -> dict[str, Wallet]:
    _step(f"Creating dev wallets in {data_dir / 'wallets'} (password: {DEV_PASSWORD})")
    wallets = {name: create_wallet(name, DEV_PASSWORD, data_dir / "wallets", opslimit=2, memlimit=64 * 1024 * 1024)[0]
               for name in names}
    funded = [(w.address, 10_000 * MINT) for w in wallets.values()]
    funded += [(w.hotkey_address("default"), 100 * MINT) for w in wallets.values()]
    _step("Writing a dev genesis that funds them")
    init_data_dir(data_dir / "node", "gridmint-local", funded, force=True)
    return wallets


def _set_up_chain(client: ChainClient, wallets: dict[str, Wallet], miners: list[list[Any]]) -> None:
    keys = {name: wallet.coldkey(DEV_PASSWORD) for name, wallet in wallets.items()}
    hot = {name: parse_address(wallet.hotkey_address("default")) for name, wallet in wallets.items()}
    _step("Creating subnet 1 (text generation), subnet 2 (embeddings) and subnet 3 (prediction)")
    for _, modality, name in SUBNETS:
        client.execute(keys["owner"], [MsgCreateSubnet(modality, name)])
    _step("Registering the validator on every subnet and the miners on theirs")
    for netuid in netuids_of(miners):
        client.execute(keys["validator"], [MsgRegister(netuid, hot["validator"], 0)])
        client.execute(keys["validator"], [MsgAddStake(netuid, hot["validator"], 1_000 * MINT)])
    for name, netuid, _ in miners:
        client.execute(keys[name], [MsgRegister(netuid, hot[name], 0)])


def _open_credit(client: ChainClient, gateway_url: str, account: Wallet, gateway: Wallet) -> str:
    """A credit line of ``account`` at the gateway, at the gateway's fee now, and an API key for it."""
    coldkey = account.coldkey(DEV_PASSWORD)
    gateway_address = parse_address(gateway.address)
    max_price = int(client.query("/subnets/params")["max_price_per_1k"])
    fee_bps = next(int(g["fee_bps"]) for g in client.query("/credit/gateways")
                   if parse_address(g["gateway"]) == gateway_address)
    client.execute(coldkey, [MsgOpenCredit(gateway_address, 1_000 * MINT, 5_000_000, max_price, fee_bps, 0, 0)])
    return request_api_key(gateway_url, coldkey, gateway.address)


def _probes(state: dict[str, Any], gateway_url: str, netuid: int) -> tuple[list[str], dict[str, str]]:
    """The options and environment of a validator that probes through the gateway: the text and embedding ones
    (the prediction validator asks its miners directly, cli/validator.py), with the probe account's key in the
    environment rather than on a command line that ``ps`` shows. A network made before probes had an account of
    their own keeps asking miners directly."""
    if netuid == 3 or "probe_api_key" not in state:
        return [], {}
    return ["--probe-gateway", gateway_url], {"GRIDMINT_PROBE_API_KEY": state["probe_api_key"]}


def _allow_miners(ports: dict[str, int], miners: list[list[Any]], netuid: int | None = None) -> list[str]:
    """``--allow-endpoint`` for exactly this network's own miners (of one subnet, or all): their loopback ports, one
    by one, so a miner announcing any other local port (the node's RPC, say) is still refused."""
    return [arg for name, miner_netuid, _ in miners if netuid in (None, miner_netuid)
            for arg in ("--allow-endpoint", f"127.0.0.1:{ports[name]}")]


def _ports(base: int, miners: list[list[Any]]) -> dict[str, int]:
    names = ["node", "gateway", "provider", "explorer", *(name for name, _, _ in miners)]
    return {name: base + offset for offset, name in enumerate(names)}


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".gridmint" / "local", show_default=True)
@click.option("--port-base", type=int, default=27600, show_default=True,
              help="The node's RPC port; the gateway, provider, explorer and miners take the next ones.")
@click.option("--miners", type=click.IntRange(1, 8), default=1, show_default=True,
              help="SmolLM2 miners on the text subnet (beside the weak one); set when the network is created.")
@click.option("--keep-recent", type=click.IntRange(min=0), default=DEFAULT_KEEP_RECENT, show_default=True,
              help="Heights of state history the devnode keeps for queries at a height; 0 keeps every height.")
@click.pass_context
def up(ctx: click.Context, data_dir: Path, port_base: int, miners: int, keep_recent: int) -> None:
    """Start the whole local network (or resume it): chain, subnets, miners, validators, gateway, provider."""
    if (data_dir / PIDS).exists():
        raise click.ClickException(f"the network in {data_dir} seems to be running; `gridmint down --data-dir "
                                   f"{data_dir}` first")
    state_path = data_dir / STATE
    if state_path.exists() and json.loads(state_path.read_text()).get("app_version") != APP_VERSION:
        _set_aside(data_dir)
    fresh = not state_path.exists()
    if fresh:
        forecaster = statsmodels_installed()
        if not forecaster:
            _step("statsmodels is not installed (pip install '.[forecast]'): subnet 3 gets the naive forecaster only")
        plan = miner_plan(miners, forecaster)
        state: dict[str, Any] = {"ports": _ports(port_base, plan), "miners": plan, "app_version": APP_VERSION}
    else:
        state = json.loads(state_path.read_text())
        plan = state["miners"]
    names = [*ROLES, *(name for name, _, _ in plan)]
    data_dir.mkdir(parents=True, exist_ok=True)
    # A resumed network's processes open their own wallets; only a first `up` uses them here.
    wallets = _first_time(data_dir, names) if fresh else {}
    launcher = Launcher(data_dir, state["ports"])
    try:
        _step(f"Starting the devnode (RPC {launcher.node_url})")
        node = launcher.start("node", "node", "start", "--data-dir", str(data_dir / "node"), "--block-time", "0.5",
                              "--rpc-laddr", f"127.0.0.1:{state['ports']['node']}", "--keep-recent", str(keep_recent))
        _wait_http(launcher.node_url + "/status", "the devnode", 60, node)
        with ChainClient(launcher.node_url) as client:
            while client.height() < 1:
                time.sleep(0.1)
            if fresh:
                _set_up_chain(client, wallets, plan)
            _step("Starting the gateway")
            gateway = launcher.start("gateway", "gateway", "run", "--wallet", "gateway", "--port",
                                     str(state["ports"]["gateway"]), "--data-dir", str(data_dir / "gateway"),
                                     "--sync-seconds", "1", *_allow_miners(state["ports"], plan))
            _wait_http(launcher.url("gateway") + "/health", "the gateway", 60, gateway)
            smol_count = sum(backend == "llama-cpp" for _, _, backend in plan)
            forecasters = [backend for _, netuid, backend in plan if netuid == 3]
            _step(f"Starting the miners: {smol_count} SmolLM2 (llama.cpp) and a weak echo miner on subnet 1, "
                  "wordllama on subnet 2" + (f", {' and '.join(forecasters)} on subnet 3" if forecasters else ""))
            miner_processes = {
                name: launcher.start(name, "miner", "run", "--netuid", str(netuid), "--backend", backend, "--wallet",
                                     name, "--port", str(state["ports"][name]), "--price", "0.001")
                for name, netuid, backend in plan}
            for name, process in miner_processes.items():
                _wait_http(launcher.url(name) + "/health", f"miner {name}", 120, process)
            _wait_for_models(launcher.url("gateway"), served_models(plan), 60)
            if fresh:
                _step("Opening credit lines at the gateway and getting API keys: the dev consumer's, the probes'")
                state["api_key"] = _open_credit(client, launcher.url("gateway"), wallets["consumer"],
                                                wallets["gateway"])
                state["probe_api_key"] = _open_credit(client, launcher.url("gateway"), wallets["prober"],
                                                      wallets["gateway"])
                state_path.write_text(json.dumps(state, indent=2))
            _step("Starting a validator on each subnet and the provider")
            for netuid in netuids_of(plan):
                probe_options, probe_env = _probes(state, launcher.url("gateway"), netuid)
                launcher.start(f"validator-{netuid}", "validator", "run", "--netuid", str(netuid), "--wallet",
                               "validator", "--interval", "5", *_allow_miners(state["ports"], plan, netuid),
                               *probe_options, env=probe_env)
            launcher.start("provider", "provider", "run", "--wallet", "provider", "--port",
                           str(state["ports"]["provider"]), "--cpu", "1", "--memory", "1024", "--data-dir",
                           str(data_dir / "provider"))
            explorer = launcher.start("explorer", "explorer", "--port", str(state["ports"]["explorer"]))
            _wait_http(launcher.url("explorer") + "/api/status", "the explorer", 30, explorer)
            height = client.height()
    except BaseException:
        _stop_all(data_dir)
        raise
    base_url = launcher.url("gateway") + "/v1"
    summary = {"base_url": base_url, "api_key": state["api_key"], "node": launcher.node_url, "height": height,
               "logs": str(launcher.logs), "data_dir": str(data_dir), "explorer": launcher.url("explorer") + "/",
               "processes": launcher.pids}
    emit(ctx, summary, "\n".join([
        "", click.style("GridMint is up.", bold=True), "",
        f"  OpenAI base URL : {base_url}", f"  API key         : {state['api_key']}",
        f"  Chain RPC       : {launcher.node_url} (height {height})", f"  Logs            : {launcher.logs}",
        f"  Explorer        : {launcher.url('explorer')}/", "",
        "  curl:", f"    curl {base_url}/chat/completions -H 'Authorization: Bearer {state['api_key']}' \\",
        "      -H 'Content-Type: application/json' \\",
        "      -d '{\"model\": \"smollm2-135m-instruct\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi!\"}]}'",
        "", "  Python:", "    from openai import OpenAI",
        f"    client = OpenAI(base_url=\"{base_url}\", api_key=\"{state['api_key']}\")",
        "    print(client.chat.completions.create(model=\"smollm2-135m-instruct\",",
        "          messages=[{\"role\": \"user\", \"content\": \"Hi!\"}]).choices[0].message.content)", "",
        *(["  Forecasts (TimeGPT's client, subnet 3):", "    from nixtla import NixtlaClient",
           f"    NixtlaClient(base_url=\"{launcher.url('gateway')}\", api_key=\"{state['api_key']}\")"
           ".forecast(df, h=12, level=[80, 90])", ""] if 3 in netuids_of(plan) else []),
        f"  Stop: gridmint down --data-dir {data_dir}    (a later `gridmint up` resumes)"]))


def _stop_all(data_dir: Path, timeout_s: float = 20.0) -> list[str]:
    path = data_dir / PIDS
    if not path.exists():
        return []
    pids: dict[str, int] = json.loads(path.read_text())
    stopped = []
    middle = [n for n in pids if n not in FIRST_STOPPED and n not in LAST_STOPPED]
    for name in [n for n in (*FIRST_STOPPED, *middle, *LAST_STOPPED) if n in pids]:
        if stop_process_group(pids[name], timeout_s):
            stopped.append(name)
    path.unlink()
    return stopped


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path.home() / ".gridmint" / "local", show_default=True)
@click.pass_context
def down(ctx: click.Context, data_dir: Path) -> None:
    """Stop everything `gridmint up` started (the chain and the wallets stay, for the next `up`)."""
    stopped = _stop_all(data_dir)
    emit(ctx, {"stopped": stopped}, f"Stopped {len(stopped)} processes." if stopped else "Nothing was running.")
