from __future__ import annotations

import pytest

from gridmint.chain.errors import ChainError
from gridmint.client.chain_client import ChainClient, raise_for_code


def test_result_codes_become_the_registered_errors() -> None:
    raise_for_code(0, "", "")
    with pytest.raises(ChainError) as caught:
        raise_for_code(1, "bank", "insufficient funds: balance 1.0 MINT, needed 2.0 MINT")
    assert caught.value.kind.name == "insufficient_funds" and "needed 2.0 MINT" in caught.value.message
    with pytest.raises(ChainError) as caught:
        raise_for_code(99, "someday", "a module this client does not know yet")
    assert (caught.value.module, caught.value.code, caught.value.kind.name) == ("someday", 99, "unknown")


def test_an_unreachable_node_is_a_clear_error() -> None:
    with ChainClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(ChainError) as caught:
        client.status()
    assert caught.value.kind.name == "node_unreachable" and "GRIDMINT_NODE" in caught.value.message
