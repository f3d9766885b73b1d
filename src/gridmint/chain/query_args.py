"""Parsing what a query brings: its path, its data and its height, and each argument of the path.

Anyone may send a query, over RPC or ``abci_query``, so every argument is bounded where it is read: a netuid fits
in 16 bits before it becomes a key, an id in 64, a height is one the store has. Each refusal is a ChainError that
says what was expected; no query argument reaches ``int.to_bytes`` or SQLite unchecked.

Numbers are plain ASCII decimal in one spelling: ``7``, not ``07``, ``+7``, `` 7`` or ``٧`` (``int()`` would read
all of them, so one value would answer at many paths).
"""

from __future__ import annotations

from gridmint.chain.crypto import parse_address
from gridmint.chain.errors import BAD_QUERY, HEIGHT_UNAVAILABLE, INVALID_ADDRESS, UNKNOWN_QUERY
from gridmint.chain.units import MAX_U64

MAX_PATH_BYTES = 512  # the longest real path (/credit/line/<address>/<address>) is under 120 bytes
MAX_DATA_BYTES = 256  # data is a short option such as "weights,bonds" or "open"
MAX_HEIGHT = 2**63 - 1  # CometBFT heights are int64
MAX_PAGE = 2**32  # pages of a long answer, such as a hotkey's stakers
MAX_U16 = 65_535
_MAX_ADDRESS_TEXT = 90  # the longest bech32 string


def _shown(text: str, limit: int = 40) -> str:
    """``text`` as a message may quote it: short, and printable whatever it held."""
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return cut.encode("ascii", "backslashreplace").decode("ascii")


def check_path(path: object) -> str:
    """A query path as the app reads it: text of at most ``MAX_PATH_BYTES`` bytes of UTF-8."""
    if not isinstance(path, str):
        raise BAD_QUERY(f"a query path is text such as /bank/balance/gm1..., got {type(path).__name__}")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise BAD_QUERY("the query path is not valid UTF-8 text") from None
    if size > MAX_PATH_BYTES:
        raise BAD_QUERY(f"the query path is {size} bytes; a path is at most {MAX_PATH_BYTES} bytes")
    return path


def check_data(data: object) -> bytes:
    if not isinstance(data, bytes):
        raise BAD_QUERY(f"query data is bytes, got {type(data).__name__}")
    if len(data) > MAX_DATA_BYTES:
        raise BAD_QUERY(f"query data is {len(data)} bytes; queries take at most {MAX_DATA_BYTES} bytes of data")
    return data


def check_height(height: object, latest: int) -> int:
    """The height a query asks for: 0 (the latest) or a committed height from 1 to ``latest``."""
    if not isinstance(height, int) or isinstance(height, bool):
        raise BAD_QUERY(f"a query height is a whole number, got {type(height).__name__}")
    if height < 0:
        raise BAD_QUERY(f"query height {_shown(str(height))} is negative; expected 0 (the latest) or a committed "
                        "height")
    if height > latest:
        raise HEIGHT_UNAVAILABLE(f"height {_shown(str(height))} is not committed; the latest committed height is "
                                 f"{latest}")
    return height


def expect_args(args: list[str], count: int, usage: str) -> list[str]:
    """``args`` if there are exactly ``count`` of them; otherwise the path is not a query (``usage`` names it)."""
    if len(args) != count:
        raise UNKNOWN_QUERY(f"expected {usage}")
    return args


def parse_uint(name: str, text: str, maximum: int) -> int:
    """A whole number from 0 to ``maximum`` written in plain ASCII decimal."""
    digits = len(str(maximum))
    if (not text.isascii() or not text.isdigit() or len(text) > digits
            or (len(text) > 1 and text.startswith("0"))):
        raise BAD_QUERY(f"{name}: expected a whole number from 0 to {maximum} in decimal digits, got "
                        f"'{_shown(text)}'")
    value = int(text)
    if value > maximum:
        raise BAD_QUERY(f"{name}: {value} is out of range; expected a whole number from 0 to {maximum}")
    return value


def parse_netuid(text: str) -> int:
    return parse_uint("netuid", text, MAX_U16)


def parse_uid(text: str) -> int:
    return parse_uint("uid", text, MAX_U16)


def parse_id(name: str, text: str) -> int:
    """An order, lease, escrow account or proposal id (ids are u64)."""
    return parse_uint(name, text, MAX_U64)


def parse_address_arg(name: str, text: str) -> bytes:
    """A ``gm1...`` address; a refusal keeps the code addresses always have (``tx/invalid_address``)."""
    if len(text) > _MAX_ADDRESS_TEXT:
        raise INVALID_ADDRESS(f"{name}: '{_shown(text)}' is not an address; expected the form gm1... "
                              f"(at most {_MAX_ADDRESS_TEXT} characters)")
    if not text.isascii() or not text.isprintable():
        raise INVALID_ADDRESS(f"{name}: '{_shown(text)}' is not an address; expected the form gm1...")
    return parse_address(text)


def parse_options(data: bytes, allowed: tuple[str, ...]) -> set[str]:
    """Comma-separated options from ``allowed`` (none is fine), such as ``weights,bonds``."""
    text = data.decode("ascii", errors="replace")
    chosen = {option for option in text.split(",") if option}
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise BAD_QUERY(f"data: unknown option '{_shown(unknown[0])}'; expected a comma-separated choice of "
                        f"{', '.join(allowed)}")
    return chosen


def parse_page(data: bytes) -> int:
    """A page of a long answer: ``page=<n>`` (from 0), or the first page when ``data`` is empty."""
    if not data:
        return 0
    text = data.decode("ascii", errors="replace")
    if not text.startswith("page="):
        raise BAD_QUERY(f"data: expected page=<number> (or nothing for the first page), got '{_shown(text)}'")
    return parse_uint("page", text[len("page="):], MAX_PAGE)


def parse_choice(data: bytes, allowed: tuple[str, ...]) -> str | None:
    """One option from ``allowed``, or None when ``data`` is empty."""
    if not data:
        return None
    text = data.decode("ascii", errors="replace")
    if text not in allowed:
        raise BAD_QUERY(f"data: '{_shown(text)}' is not one of {', '.join(allowed)} (or empty for all)")
    return text
