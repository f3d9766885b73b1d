"""Bytes a busy subnet adds to the store per block, with history pruned past ``keep_recent`` heights and without.

One subnet of ``--uids`` UIDs (``--validators`` of them staked validators, the rest miners), tempo ``--tempo``;
each validator sets weights on every miner once per epoch (validator i in block i mod tempo of the epoch), its
scores a fixed quality per miner plus fresh noise each epoch, as a validator's measurements move. Every block goes
through two real Apps in the same process: one whose store keeps the last ``--keep-recent`` heights, one that keeps
every height (an archive: the baseline). Both must return the same app hash for every block, and every transaction
must succeed, or the bench stops.

Size is the store's pages that hold data, ``(page_count - freelist_count) * page_size``: what the database holds
after SQLite's reuse of freed pages, B-tree and index overhead included, without the VACUUM that page_count alone
would need to be honest (a VACUUM of the archive takes longer than the run). The logical size (bytes of keys and
values in ``state`` and ``history``) and the files' sizes after a WAL checkpoint are printed beside it.

    .venv/bin/python bench/state_growth.py [--blocks 2000] [--keep-recent 500] [--uids 1024] [--tempo 20]

The last line is JSON: {"bytes_per_block_pruned", "bytes_per_block_unpruned", "final_bytes_pruned",
"final_bytes_unpruned", "ratio_at_end", "growth_per_block_after_two_windows_pruned", ..., "series"}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from busy_subnet import BusySubnet, sign_next
from gridmint.chain.app import MODULES, App, TxResult
from gridmint.chain.crypto import PrivateKey
from gridmint.chain.genesis import validate_genesis
from gridmint.chain.store import Store
from gridmint.chain.tx import Msg


class TwoNodes:
    """The same blocks through a pruning App and an archive App; counts only blocks where every tx succeeded."""

    def __init__(self, workdir: Path, keep_recent: int, subnet: BusySubnet) -> None:
        genesis = validate_genesis(subnet.genesis_document(), MODULES)
        self.paths = {"pruned": workdir / "pruned.sqlite", "unpruned": workdir / "unpruned.sqlite"}
        self.apps = {"pruned": App(Store(self.paths["pruned"], keep_recent=keep_recent)),
                     "unpruned": App(Store(self.paths["unpruned"]))}
        for app in self.apps.values():
            app.init_chain(genesis)
        self.proposer = subnet.authority.address
        self.height = 0
        self.nonces: dict[bytes, int] = {}
        self.commit_s = {"pruned": 0.0, "unpruned": 0.0}

    def tx(self, signer: PrivateKey, *messages: Msg) -> bytes:
        return sign_next(self.apps["pruned"].store, self.nonces, signer, *messages)

    def fitting(self, txs: list[bytes]) -> int:
        return len(self.apps["pruned"].fitting(txs, self.height + 1).txs)

    def block(self, txs: list[bytes]) -> None:
        self.height += 1
        hashes = set()
        for name, app in self.apps.items():
            result = app.finalize_block(txs, self.height, (1_767_225_600 + self.height) * 10**9, self.proposer)
            failed: list[TxResult] = [r for r in result.tx_results if not r.ok]
            if failed:
                raise SystemExit(f"block {self.height}: {len(failed)} transactions failed, e.g. {failed[0].log}")
            started = time.perf_counter()
            app.commit()
            self.commit_s[name] += time.perf_counter() - started
            hashes.add(result.app_hash)
        if len(hashes) != 1:
            raise SystemExit(f"block {self.height}: the pruned and the archive app disagree on the app hash")

    def measure(self) -> dict[str, dict[str, int]]:
        sizes = {}
        for name, app in self.apps.items():
            with sqlite3.connect(self.paths[name]) as db:
                rows, logical = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(key) + COALESCE(LENGTH(value), 0)), 0) FROM history"
                ).fetchone()
                state_bytes = db.execute(
                    "SELECT COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) FROM state").fetchone()[0]
            sizes[name] = {"bytes": app.store.bytes_in_use(), "history_rows": rows,
                           "logical_bytes": logical + state_bytes, "earliest_height": app.store.earliest_height}
        return sizes

    def file_sizes(self) -> dict[str, int]:
        sizes = {}
        for name, path in self.paths.items():
            with sqlite3.connect(path) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            wal = Path(f"{path}-wal")
            sizes[name] = os.path.getsize(path) + (os.path.getsize(wal) if wal.exists() else 0)
        return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=2_000, help="blocks measured after the subnet is set up")
    parser.add_argument("--keep-recent", type=int, default=500)
    parser.add_argument("--uids", type=int, default=1_024)
    parser.add_argument("--validators", type=int, default=64)
    parser.add_argument("--tempo", type=int, default=20)
    parser.add_argument("--sample", type=int, default=100, help="blocks between two size readings")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    subnet = BusySubnet("state_growth", args.uids, args.validators, args.tempo, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="gridmint-state-growth-"))
    try:
        run(args, workdir, subnet)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path, subnet: BusySubnet) -> None:
    nodes = TwoNodes(workdir, args.keep_recent, subnet)

    started = time.perf_counter()
    subnet.set_up(nodes)
    setup_blocks = nodes.height
    print(f"set up {args.uids} UIDs ({args.validators} validators) in {setup_blocks} blocks, "
          f"{time.perf_counter() - started:.1f} s; now {args.blocks} blocks, tempo {args.tempo}, "
          f"keep_recent {args.keep_recent} against an archive (store in {workdir})", flush=True)

    start = nodes.measure()
    series = [{"block": 0, "pruned": start["pruned"]["bytes"], "unpruned": start["unpruned"]["bytes"]}]
    for block in range(1, args.blocks + 1):
        subnet.weights_block(nodes)
        if block % args.sample == 0:
            sizes = nodes.measure()
            series.append({"block": block, "pruned": sizes["pruned"]["bytes"], "unpruned": sizes["unpruned"]["bytes"]})
            print(f"block {block:>5}: pruned {sizes['pruned']['bytes'] / 1e6:7.2f} MB "
                  f"({sizes['pruned']['history_rows']:,} history rows, oldest height "
                  f"{sizes['pruned']['earliest_height']}), unpruned {sizes['unpruned']['bytes'] / 1e6:7.2f} MB "
                  f"({sizes['unpruned']['history_rows']:,} rows); {time.perf_counter() - started:.0f} s", flush=True)
    end = nodes.measure()
    files = nodes.file_sizes()
    per_block = {name: (end[name]["bytes"] - start[name]["bytes"]) / args.blocks for name in ("pruned", "unpruned")}
    after = [point for point in series if point["block"] >= 2 * args.keep_recent]
    growth_after = ({name: (after[-1][name] - after[0][name]) / (after[-1]["block"] - after[0]["block"])
                     for name in ("pruned", "unpruned")} if len(after) > 1 else {"pruned": None, "unpruned": None})
    ratio = end["unpruned"]["bytes"] / end["pruned"]["bytes"]
    commit_ms = {name: nodes.commit_s[name] / nodes.height * 1000 for name in ("pruned", "unpruned")}
    print(f"bytes added per block over {args.blocks} blocks: pruned {per_block['pruned']:,.0f}, "
          f"unpruned {per_block['unpruned']:,.0f}")
    if growth_after["pruned"] is not None:
        print(f"growth per block from block {after[0]['block']} on: pruned {growth_after['pruned']:,.0f}, "
              f"unpruned {growth_after['unpruned']:,.0f}")
    print(f"at the end: pruned {end['pruned']['bytes'] / 1e6:.2f} MB, unpruned {end['unpruned']['bytes'] / 1e6:.2f} MB "
          f"(ratio {ratio:.2f}); logical {end['pruned']['logical_bytes'] / 1e6:.2f} vs "
          f"{end['unpruned']['logical_bytes'] / 1e6:.2f} MB; files after a checkpoint {files['pruned'] / 1e6:.2f} vs "
          f"{files['unpruned'] / 1e6:.2f} MB")
    print(f"commit per block: pruned {commit_ms['pruned']:.2f} ms, unpruned {commit_ms['unpruned']:.2f} ms")
    print(json.dumps({
        "bytes_per_block_pruned": round(per_block["pruned"]), "bytes_per_block_unpruned": round(per_block["unpruned"]),
        "final_bytes_pruned": end["pruned"]["bytes"], "final_bytes_unpruned": end["unpruned"]["bytes"],
        "ratio_at_end": round(ratio, 2),
        "growth_per_block_after_two_windows_pruned": growth_after["pruned"],
        "growth_per_block_after_two_windows_unpruned": growth_after["unpruned"],
        "logical_bytes_pruned": end["pruned"]["logical_bytes"],
        "logical_bytes_unpruned": end["unpruned"]["logical_bytes"],
        "history_rows_pruned": end["pruned"]["history_rows"], "history_rows_unpruned": end["unpruned"]["history_rows"],
        "file_bytes_pruned": files["pruned"], "file_bytes_unpruned": files["unpruned"],
        "commit_ms_pruned": round(commit_ms["pruned"], 3), "commit_ms_unpruned": round(commit_ms["unpruned"], 3),
        "blocks": args.blocks, "keep_recent": args.keep_recent, "uids": args.uids, "validators": args.validators,
        "tempo": args.tempo, "series": series}))


if __name__ == "__main__":
    main()
