"""Limits of a node's RPC, with CometBFT's names and defaults, for both kinds of node.

The devnode enforces them itself (``node/rpc.py``, ``node/server.py``); ``gridmint net init`` writes the same
values into each CometBFT node's ``config.toml`` ([rpc] section), where CometBFT v0.38 enforces every one of them
itself (checked against 0.38.25): a batch over the limit is JSON-RPC error -32600 "batch request exceeds maximum
(N) allowed number of requests", a body over it HTTP 400 with -32600 "request body too large", headers over it
HTTP 431, a subscription past either subscription limit -32603 "max_subscriptions_per_client N reached" (or
"max_subscription_clients"), and connections past ``max_open_connections`` wait unaccepted until one closes (the
devnode answers them 503 instead). ``max_websocket_message_bytes`` is the devnode's name for what CometBFT takes
from ``max_body_bytes`` (it resets a websocket that sends more). The last two fields exist only on the devnode:
the worker threads that answer queries off the loop that makes blocks, and how many queries may run or wait for
them before the next one is answered "busy".
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from gridmint.node.devnode import NodeSetupError


@dataclass(frozen=True)
class RPCLimits:
    max_body_bytes: int = 1_000_000  # a POST body; CometBFT's rpc.max_body_bytes
    max_header_bytes: int = 1_048_576  # request line and headers; rpc.max_header_bytes
    max_request_batch_size: int = 10  # requests in one JSON-RPC batch; rpc.max_request_batch_size
    max_open_connections: int = 900  # HTTP and websocket connections at once; rpc.max_open_connections
    max_subscription_clients: int = 100  # websockets holding subscriptions; rpc.max_subscription_clients
    max_subscriptions_per_client: int = 5  # rpc.max_subscriptions_per_client
    max_websocket_message_bytes: int = 1_000_000  # CometBFT reads websocket messages up to max_body_bytes
    timeout_broadcast_tx_commit_s: int = 10  # rpc.timeout_broadcast_tx_commit ("10s")
    query_workers: int = 2  # devnode: threads that answer queries and block reads
    max_pending_queries: int = 256  # devnode: queries running or waiting for a worker

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise NodeSetupError(f"RPC limit {field.name} must be a whole number of at least 1, got {value!r}")

    def with_settings(self, settings: list[str] | tuple[str, ...]) -> RPCLimits:
        """These limits with ``name=value`` settings applied (as ``--rpc-limit`` takes them)."""
        names = [field.name for field in fields(self)]
        changes: dict[str, int] = {}
        for setting in settings:
            name, sep, value = setting.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise NodeSetupError(f"RPC limit '{setting[:80]}': expected NAME=VALUE with NAME one of "
                                     f"{', '.join(names)}")
            try:
                changes[name] = int(value.strip().replace("_", ""))
            except ValueError:
                raise NodeSetupError(f"RPC limit {name}: expected a whole number, got '{value[:40]}'") from None
        return replace(self, **changes)

    def cometbft_config(self) -> list[tuple[str, str]]:
        """``(key, value)`` of CometBFT's [rpc] section that carry these limits (v0.38 enforces every one)."""
        return [
            ("max_body_bytes", str(self.max_body_bytes)),
            ("max_header_bytes", str(self.max_header_bytes)),
            ("max_request_batch_size", str(self.max_request_batch_size)),
            ("max_open_connections", str(self.max_open_connections)),
            ("max_subscription_clients", str(self.max_subscription_clients)),
            ("max_subscriptions_per_client", str(self.max_subscriptions_per_client)),
            ("timeout_broadcast_tx_commit", f'"{self.timeout_broadcast_tx_commit_s}s"'),
        ]
