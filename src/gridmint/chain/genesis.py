"""Genesis: chain id, start time, initial height and each module's starting state, validated and exportable.

The file has CometBFT's genesis shape (``genesis_time``, ``chain_id``, ``initial_height``, ``app_state``), so the
same file starts the devnode and, later, a CometBFT network; ``app_state`` holds one section per module plus
``tx`` (transaction limits) and ``nonces`` (each account's last nonce, in an exported genesis). Every problem is
reported with the path of the field at fault.

``gridmint genesis export --height H`` writes the committed state at H in this shape, with ``initial_height`` H + 1:
each module's readable fields (parameters, balances, held funds, authorities) and the records of the rest of its
state. A chain started from it has, before its first block, the app hash the old chain had at H; a module that gained
a parameter since reads it at its default.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmint.chain.crypto import parse_address
from gridmint.chain.errors import INVALID_GENESIS, ChainError
from gridmint.chain.module import ModuleSpec
from gridmint.chain.params import params_from_json, params_to_json
from gridmint.chain.tx import ABSOLUTE_MAX_TX_BYTES
from gridmint.chain.units import MAX_U64

CHAIN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}[a-z0-9]$")
MAX_INITIAL_HEIGHT = 2**62  # CometBFT heights are int64; leave room to grow
_TIME_PATTERN = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", re.ASCII)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class TxParams:
    max_tx_bytes: int = 8_192


TX_PARAMS_BOUNDS = {"max_tx_bytes": (256, ABSOLUTE_MAX_TX_BYTES)}


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time: str  # RFC 3339, as CometBFT writes it
    initial_height: int
    tx_params: TxParams
    modules: dict[str, Any]  # module name -> its validated genesis state
    nonces: tuple[tuple[bytes, int], ...]  # (address, last nonce used), sorted: an exported chain's accounts
    document: dict[str, Any]  # the JSON it came from

    @property
    def genesis_time_ns(self) -> int:
        return parse_time_ns(self.genesis_time)


def parse_time_ns(text: str) -> int:
    """RFC 3339 (``2026-11-23T10:00:00.5Z``) -> nanoseconds since the epoch, in integers."""
    match = _TIME_PATTERN.fullmatch(text)
    if match is None:
        raise INVALID_GENESIS(f"genesis_time: '{text[:40]}' is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
    date, clock = match.group(1).split("T")
    year, month, day = (int(part) for part in date.split("-"))
    hour, minute, second = (int(part) for part in clock.split(":"))
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and hour < 24 and minute < 60
            and second < 61):
        raise INVALID_GENESIS(f"genesis_time: '{text}' is not a valid date and time")
    offset = 0
    if match.group(3) != "Z":
        sign = -1 if match.group(3)[0] == "-" else 1
        offset_hours, offset_minutes = int(match.group(3)[1:3]), int(match.group(3)[4:6])
        if offset_hours > 23 or offset_minutes > 59:
            raise INVALID_GENESIS(f"genesis_time: '{text}' has an offset beyond ±23:59")
        offset = sign * (offset_hours * 3600 + offset_minutes * 60)
    seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    return seconds * 10**9 + int((match.group(2) or "0").ljust(9, "0"))


def _days_in_month(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar, in integers (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def validate_genesis(document: Any, modules: tuple[ModuleSpec, ...]) -> Genesis:
    if not isinstance(document, dict):
        raise INVALID_GENESIS("a genesis file is a JSON object")
    chain_id = document.get("chain_id")
    if not isinstance(chain_id, str) or not CHAIN_ID_PATTERN.fullmatch(chain_id):
        raise INVALID_GENESIS("chain_id: expected 2 to 50 characters of a-z, 0-9 and '-', such as gridmint-dev")
    genesis_time = document.get("genesis_time", "1970-01-01T00:00:00Z")
    if not isinstance(genesis_time, str):
        raise INVALID_GENESIS("genesis_time: expected an RFC 3339 string")
    parse_time_ns(genesis_time)
    initial_height = _parse_initial_height(document.get("initial_height", "1"))
    app_state = document.get("app_state")
    if not isinstance(app_state, dict):
        raise INVALID_GENESIS("app_state: expected an object with one section per module")
    known = {"tx", "nonces"} | {module.name for module in modules}
    unknown = sorted(set(app_state) - known)
    if unknown:
        raise INVALID_GENESIS(f"app_state: unknown sections {unknown}; known sections are {sorted(known)}")
    validated: dict[str, Any] = {}
    for module in modules:
        if module.validate_genesis is not None:
            validated[module.name] = module.validate_genesis(app_state.get(module.name, {}))
    tx_params = params_from_json(TxParams, "tx", app_state.get("tx", {}), TX_PARAMS_BOUNDS)
    nonces = _parse_nonces(app_state.get("nonces", []))
    return Genesis(chain_id, genesis_time, initial_height, tx_params, validated, nonces, document)


def _parse_nonces(entries: Any) -> tuple[tuple[bytes, int], ...]:
    """Each account's last used nonce: an exported chain's accounts go on where they were, and a transaction
    already in a block of the old chain cannot be replayed on the new one under the same chain id."""
    if not isinstance(entries, list):
        raise INVALID_GENESIS("nonces: expected a list of {\"address\": \"gm1...\", \"nonce\": <int>}")
    nonces: dict[bytes, int] = {}
    for index, entry in enumerate(entries):
        where = f"nonces[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"address", "nonce"}:
            raise INVALID_GENESIS(f"{where}: expected {{\"address\": \"gm1...\", \"nonce\": <int>}}")
        try:
            account = parse_address(entry["address"])
        except ChainError as exc:
            raise INVALID_GENESIS(f"{where}.address: {exc.message}") from None
        nonce = entry["nonce"]
        if not isinstance(nonce, int) or isinstance(nonce, bool) or not 1 <= nonce <= MAX_U64:
            raise INVALID_GENESIS(f"{where}.nonce: expected a whole number from 1 to {MAX_U64}")
        if account in nonces:
            raise INVALID_GENESIS(f"{where}: address {entry['address']} is listed twice")
        nonces[account] = nonce
    return tuple(sorted(nonces.items()))


def _parse_initial_height(raw: Any) -> int:
    """CometBFT writes the height as a decimal string; a JSON number is read too. Anything else is refused."""
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if (not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19
            or not 1 <= int(text) <= MAX_INITIAL_HEIGHT):
        raise INVALID_GENESIS(f"initial_height: expected a whole number from 1 to {MAX_INITIAL_HEIGHT}")
    return int(text)


def load_genesis(path: Path, modules: tuple[ModuleSpec, ...]) -> Genesis:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise INVALID_GENESIS(f"no genesis file at {path}; create one with `gridmint node init`") from None
    except (OSError, ValueError) as exc:
        raise INVALID_GENESIS(f"{path} is not readable JSON: {exc}") from None
    try:
        return validate_genesis(document, modules)
    except ChainError as exc:
        raise INVALID_GENESIS(f"{path}: {exc.message}") from None


def write_genesis(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def make_genesis_document(chain_id: str, genesis_time: str, authorities: list[tuple[str, bytes]],
                          balances: list[tuple[str, int]], min_tx_fee: int = 10_000,
                          voting_period: int = 1_000) -> dict[str, Any]:
    """A genesis document from names and public keys of authorities and ``(gm1 address, grains)`` balances."""
    return {
        "chain_id": chain_id,
        "genesis_time": genesis_time,
        "initial_height": "1",
        "app_state": {
            "tx": params_to_json(TxParams()),
            "bank": {"params": {"min_tx_fee": min_tx_fee},
                     "balances": [{"address": address, "amount": grains} for address, grains in balances]},
            "authority": {
                "params": {"voting_period": voting_period},
                "members": [{"name": name, "pub_key": base64.b64encode(key).decode(), "power": 10}
                            for name, key in authorities],
            },
        },
    }
