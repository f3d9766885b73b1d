"""Errors of the client side, with stable codes like the chain's."""

from __future__ import annotations

from gridmint.chain.errors import register

WRONG_PASSWORD = register("wallet", 1, "wrong_password")
WALLET_NOT_FOUND = register("wallet", 2, "not_found")
WALLET_EXISTS = register("wallet", 3, "exists")
BAD_MNEMONIC = register("wallet", 4, "bad_mnemonic")
BAD_KEYFILE = register("wallet", 5, "bad_keyfile")
BAD_NAME = register("wallet", 6, "bad_name")
EMPTY_PASSWORD = register("wallet", 7, "empty_password")

NODE_UNREACHABLE = register("client", 1, "node_unreachable")
RPC_FAILED = register("client", 2, "rpc_failed")
TX_REFUSED = register("client", 3, "tx_refused")
TX_TIMEOUT = register("client", 4, "tx_timeout")
