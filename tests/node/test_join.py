"""`gridmint node init --genesis … --peers …`: a full node's home with the network's genesis, its peers, its
addresses and CometBFT's state sync trusting a header read from a running node's RPC; every bad input refused with
its code before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gridmint.chain.errors import ChainError
from gridmint.cli.main import cli
from gridmint.node.join import fetch_genesis, init_full_node, is_full_node_home, listen_address, parse_peers
from tests.support.nodes import DevnodeProcess

PEER_ID = "3f" * 20
PEERS = f"{PEER_ID}@10.77.0.1:26656,{'a1' * 20}@node-b.example:26656"


def _config(home: Path) -> str:
    return (home / "config" / "config.toml").read_text()


def _value(config: str, section: str, key: str) -> str:
    body = config.split(f"\n[{section}]\n", 1)[1] if section else config
    match = re.search(rf"^{key} = (.*)$", body, re.MULTILINE)
    assert match is not None, key
    return match.group(1)


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["--json", *args])
    return result


def test_a_full_node_home_with_peers_addresses_and_state_sync_from_a_running_node(
        tmp_path: Path, devnode_process: DevnodeProcess, data_dir: Path) -> None:
    home = tmp_path / "joiner"
    result = _invoke("node", "init", "--data-dir", str(home), "--genesis", str(data_dir / "genesis.json"),
                     "--peers", PEERS, "--p2p-laddr", "0.0.0.0:26656", "--external-address", "10.77.0.9:26656",
                     "--trust-rpc", devnode_process.url, "--allow-private-addresses",
                     "--config", 'consensus.timeout_commit="250ms"')
    assert result.exit_code == 0, result.output
    joined = json.loads(result.output)
    assert is_full_node_home(home) and re.fullmatch(r"[0-9a-f]{40}", joined["node_id"])
    assert (home / "config" / "genesis.json").read_bytes() == (data_dir / "genesis.json").read_bytes()
    config = _config(home)
    assert _value(config, "rpc", "laddr") == '"tcp://127.0.0.1:26657"'  # loopback unless asked
    assert _value(config, "p2p", "laddr") == '"tcp://0.0.0.0:26656"'
    assert _value(config, "p2p", "external_address") == '"10.77.0.9:26656"'
    assert _value(config, "p2p", "persistent_peers") == f'"{PEERS}"'
    assert _value(config, "p2p", "addr_book_strict") == "false"
    assert _value(config, "consensus", "timeout_commit") == '"250ms"'
    assert _value(config, "", "proxy_app") == f'"unix://{home.resolve()}/app.sock"'
    assert _value(config, "statesync", "enable") == "true"
    assert _value(config, "statesync", "rpc_servers") == f'"{devnode_process.url},{devnode_process.url}"'
    height = int(_value(config, "statesync", "trust_height"))
    assert height >= 1 and joined["state_sync"]["trust_height"] == height
    block = devnode_process_block(devnode_process, height)
    assert _value(config, "statesync", "trust_hash") == f'"{block}"'
    # Without --trust-rpc: no state sync, and the defaults keep RPC on loopback and peers public.
    plain = tmp_path / "plain"
    assert _invoke("node", "init", "--data-dir", str(plain), "--genesis", str(data_dir / "genesis.json"),
                   "--peers", PEERS).exit_code == 0
    assert _value(_config(plain), "statesync", "enable") == "false"
    assert _value(_config(plain), "p2p", "addr_book_strict") == "true"


def devnode_process_block(process: DevnodeProcess, height: int) -> str:
    import httpx

    answer = httpx.post(process.url, json={"jsonrpc": "2.0", "id": 1, "method": "block",
                                           "params": {"height": str(height)}}).json()
    return str(answer["result"]["block_id"]["hash"])


@pytest.mark.parametrize(("options", "module", "name"), [
    (("--peers", "nothex@10.0.0.1:26656"), "node", "bad_peer"),
    (("--peers", f"{PEER_ID}@10.0.0.1:70000"), "node", "bad_peer"),
    (("--peers", f"{PEER_ID}@10.0.0.1"), "node", "bad_peer"),
    (("--p2p-laddr", "everywhere"), "node", "bad_address"),
    (("--external-address", "10.0.0.1:0"), "node", "bad_address"),
    (("--config", "timeout_commit=1s"), "node", "bad_config"),
    (("--config", "consensus.no_such_key=1"), "node", "bad_config"),
    (("--trust-rpc", "http://127.0.0.1:9"), "node", "trust_unavailable"),
], ids=["peer-id", "peer-port", "peer-no-port", "laddr", "external", "config-shape", "config-key", "trust"])
def test_bad_input_is_refused_with_its_code_and_leaves_no_home(
        tmp_path: Path, data_dir: Path, options: tuple[str, ...], module: str, name: str) -> None:
    home = tmp_path / "joiner"
    with pytest.raises(ChainError) as caught:
        arguments = dict(zip(options[::2], options[1::2], strict=True))
        init_full_node(home, str(data_dir / "genesis.json"), arguments.get("--peers", PEERS),
                       p2p_laddr=arguments.get("--p2p-laddr", "0.0.0.0:26656"),
                       external_address=arguments.get("--external-address", ""),
                       trust_rpc=tuple(v for k, v in arguments.items() if k == "--trust-rpc"),
                       settings=tuple(v for k, v in arguments.items() if k == "--config"))
    assert (caught.value.module, caught.value.kind.name) == (module, name)
    assert "expected" in caught.value.message
    assert not home.exists() and not (tmp_path / "joiner.partial").exists()


def test_a_genesis_that_cannot_be_read_or_is_invalid_is_refused(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "junk.json").write_text("{not json")
    document = json.loads((data_dir / "genesis.json").read_text())
    (tmp_path / "invalid.json").write_text(json.dumps({**document, "app_state": {"nonsense": {}}}))
    cases = {str(tmp_path / "missing.json"): "bad_genesis_source", str(tmp_path / "junk.json"): "bad_genesis_source",
             "http://127.0.0.1:9/genesis": "bad_genesis_source", str(tmp_path / "invalid.json"): "invalid_genesis"}
    for source, name in cases.items():
        with pytest.raises(ChainError) as caught:
            init_full_node(tmp_path / "joiner", source, PEERS)
        assert caught.value.kind.name == name, source
        assert not (tmp_path / "joiner").exists()
    # A node's /genesis answer is unwrapped to the document itself.
    (tmp_path / "answer.json").write_text(json.dumps({"jsonrpc": "2.0", "id": -1, "result": {"genesis": document}}))
    raw, parsed = fetch_genesis(str(tmp_path / "answer.json"))
    assert parsed == document and json.loads(raw) == document


def test_a_home_that_holds_a_node_is_never_overwritten(tmp_path: Path, data_dir: Path) -> None:
    home = tmp_path / "joiner"
    init_full_node(home, str(data_dir / "genesis.json"), PEERS)
    before = _config(home)
    with pytest.raises(ChainError) as caught:
        init_full_node(home, str(data_dir / "genesis.json"), "")
    assert caught.value.kind.name == "home_exists" and _config(home) == before
    result = _invoke("node", "init", "--data-dir", str(tmp_path / "x"), "--peers", PEERS)
    assert result.exit_code != 0 and "--genesis" in result.output


def test_listen_and_peer_parsing() -> None:
    assert listen_address("0.0.0.0:26656", "--p2p-laddr") == "tcp://0.0.0.0:26656"
    assert listen_address("tcp://10.1.2.3:1", "--p2p-laddr") == "tcp://10.1.2.3:1"
    assert listen_address(":26657", "--rpc-laddr") == "tcp://0.0.0.0:26657"
    assert parse_peers(f" {PEER_ID}@[::1]:26656 , ") == [f"{PEER_ID}@[::1]:26656"]
    assert parse_peers("") == []
