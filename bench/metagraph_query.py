"""The metagraph of a 4,096-UID subnet through a devnode's RPC, decoded into numpy arrays by the client.

Registers ``--uids`` hotkeys on one subnet and has each announce an endpoint, as miners do (all signed ahead,
sent in JSON-RPC batches), then times the metagraph
query (best and median of ``--repeat``) next to the smallest query there is (a balance) measured in the same
run, and the ratio. The last line is JSON: {"query_ms", "baseline_query_ms", "ratio", ...}.

    .venv/bin/python bench/metagraph_query.py [--uids 4096] [--repeat 20]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gridmint.chain import bank, fees
from gridmint.chain.crypto import PrivateKey, format_address
from gridmint.chain.errors import ChainError
from gridmint.chain.genesis import make_genesis_document, write_genesis
from gridmint.chain.params import params_to_json
from gridmint.chain.subnets import Hyperparams, MsgAnnounceEndpoint, MsgCreateSubnet, MsgRegister, MsgSetHyperparam
from gridmint.chain.tx import Msg, TxBody, sign_tx
from gridmint.client.chain_client import ChainClient
from gridmint.client.metagraph import Metagraph
from gridmint.node.devnode import write_node_key
from gridmint.ports import free_port

CHAIN_ID = "gridmint-bench"
MINT = 10**9


def timed(repeat: int, function) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return min(samples), statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uids", type=int, default=4_096)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    owner = PrivateKey(b"\x01" * 32)
    hotkeys = [PrivateKey(hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(args.uids)]
    workdir = Path(tempfile.mkdtemp(prefix="gridmint-bench-"))
    authority = write_node_key(workdir)
    document = make_genesis_document(CHAIN_ID, "2026-01-01T00:00:00Z", [("bench", authority.public_key)],
                                     [(format_address(owner.address), 10**9 * MINT)]
                                     + [(format_address(k.address), MINT) for k in hotkeys])
    document["app_state"]["subnets"] = {"params": {"min_lock": MINT, "default_tempo": 50_400}}
    write_genesis(workdir / "genesis.json", document)

    nonces: dict[bytes, int] = {}

    def tx(*messages: Msg, signer: PrivateKey = owner) -> str:
        nonces[signer.address] = nonce = nonces.get(signer.address, 0) + 1
        shape = params_to_json(Hyperparams(tempo=50_400, max_uids=args.uids))  # what the setup makes of subnet 1
        fee = fees.compute_required_fee(bank.Params(), messages, "", lambda netuid: shape, lambda: shape)
        body = TxBody(CHAIN_ID, signer.public_key, nonce, fee, messages)
        return base64.b64encode(sign_tx(body, signer)).decode()

    setup = [tx(MsgCreateSubnet("text-generation", "bench")), tx(MsgSetHyperparam(1, "max_uids", args.uids)),
             tx(MsgSetHyperparam(1, "burn_max", MINT))]
    registrations = [tx(MsgRegister(1, k.address, 0)) for k in hotkeys]
    announcements = [tx(MsgAnnounceEndpoint(1, f"http://10.0.{i // 250}.{i % 250}:8000", ["smollm2-135m"], 1_000, 1),
                        signer=k) for i, k in enumerate(hotkeys)]

    port = free_port()
    log = (workdir / "devnode.log").open("w")
    node = subprocess.Popen([sys.executable, "-m", "gridmint.cli.main", "node", "start", "--data-dir", str(workdir),
                             "--block-time", "0.5", "--rpc-laddr", f"127.0.0.1:{port}", "--log-level", "warning",
                             "--rpc-limit", "max_request_batch_size=512"],  # our batches (CometBFT's default: 10)
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as http, ChainClient(url) as client:
            for _ in range(200):
                try:
                    if client.height() >= 1:
                        break
                except ChainError:  # the node is still starting
                    time.sleep(0.1)
            print(f"registering {args.uids} hotkeys on subnet 1 ...", file=sys.stderr)
            started = time.perf_counter()
            # The max_uids raise takes effect at the end of its block: registrations past 256 wait for it.
            for phase in (setup, registrations, announcements):
                for offset in range(0, len(phase), 512):
                    batch = phase[offset:offset + 512]
                    answers = http.post("/", json=[{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync",
                                                    "params": {"tx": t}} for i, t in enumerate(batch)]).json()
                    refused = [a for a in answers if a.get("result", {}).get("code", 1) != 0]
                    if refused:
                        raise SystemExit(f"refused: {refused[0]}")
                while int(http.post("/", json={"jsonrpc": "2.0", "id": 0, "method": "num_unconfirmed_txs"}).json()
                          ["result"]["n_txs"]):
                    time.sleep(0.2)
            assert sum(e is not None for e in Metagraph.fetch(client, 1).endpoints) == args.uids
            print(f"registered in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            for _ in range(5):  # warm up: a validator or gateway queries it over and over
                graph = Metagraph.fetch(client, 1)
            best, median = timed(args.repeat, lambda: Metagraph.fetch(client, 1))
            # The client decodes endpoints and formats addresses on first use; what that adds, for the record:
            _, with_endpoints = timed(5, lambda: (lambda g: (g.endpoints, g.hotkeys))(Metagraph.fetch(client, 1)))
            address = format_address(owner.address)
            base_best, base_median = timed(args.repeat, lambda: client.balance(address))
    finally:
        node.terminate()
        node.wait(timeout=20)
        log.close()
    print(f"metagraph of {graph.n} UIDs with endpoints through the RPC: best {best:.1f} ms, median {median:.1f} ms")
    print(f"balance query (baseline)              : best {base_best:.1f} ms, median {base_median:.1f} ms")
    print(f"ratio (median)                        : {median / base_median:.1f}")
    print(f"with every endpoint decoded and hotkey formatted on the client: median {with_endpoints:.1f} ms")
    print(json.dumps({"query_ms": round(median, 2), "query_best_ms": round(best, 2),
                      "baseline_query_ms": round(base_median, 2), "ratio": round(median / base_median, 2),
                      "query_with_endpoints_decoded_ms": round(with_endpoints, 2),
                      "uids": graph.n}))


if __name__ == "__main__":
    main()
