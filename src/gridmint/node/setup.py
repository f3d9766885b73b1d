"""Creating a devnode's data directory: a node key and a genesis with this node as the authority."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gridmint.chain.app import MODULES
from gridmint.chain.crypto import PrivateKey, format_address, generate_seed
from gridmint.chain.genesis import make_genesis_document, validate_genesis, write_genesis
from gridmint.chain.units import GRAINS_PER_MINT
from gridmint.node.devnode import GENESIS_FILE, NodeSetupError, write_node_key

# Dev chains: epochs every 20 blocks and a cheap subnet lock, so that a subnet's life can be watched in minutes.
DEV_SUBNETS = {"params": {"default_tempo": 20, "min_lock": 100 * GRAINS_PER_MINT}}


def init_data_dir(data_dir: Path, chain_id: str, balances: list[tuple[str, int]], force: bool = False) -> str:
    """Write ``node_key.json`` and ``genesis.json`` funding ``(gm1 address, grains)``; returns the authority."""
    genesis_path = data_dir / GENESIS_FILE
    if genesis_path.exists() and not force:
        raise NodeSetupError(f"{genesis_path} already exists; pass --force to start a new chain there")
    key = PrivateKey(generate_seed())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = make_genesis_document(chain_id, now, [("devnode", key.public_key)], balances)
    document["app_state"]["subnets"] = DEV_SUBNETS
    validate_genesis(document, MODULES)  # refuse before touching anything: a bad request loses nothing
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("state.sqlite", "blocks.sqlite"):
        for suffix in ("", "-wal", "-shm"):
            (data_dir / (stale + suffix)).unlink(missing_ok=True)
    write_node_key(data_dir, key.seed)
    write_genesis(genesis_path, document)
    return format_address(key.address)
