from __future__ import annotations

from gridmint.chain.bank import MsgSend
from gridmint.node.devnode import DevNode
from gridmint.node.mempool import Mempool, MempoolLimits
from tests.support.chain import MINT, START_BALANCE, key, signed


def test_full_mempool_refuses_with_a_clear_error(node: DevNode) -> None:
    pool = Mempool(node.app, MempoolLimits(max_txs=3))
    txs = [signed(key("alice"), n, MsgSend(key("bob").address, MINT)) for n in range(1, 5)]
    assert [pool.add(tx)[1].code for tx in txs[:3]] == [0, 0, 0]
    _, result = pool.add(txs[3])
    assert (result.codespace, result.code) == ("mempool", 1)
    assert "mempool is full" in result.log and "resubmit" in result.log
    assert len(pool) == 3


def test_byte_limit_and_duplicates(node: DevNode) -> None:
    tx = signed(key("alice"), 1, MsgSend(key("bob").address, MINT))
    pool = Mempool(node.app, MempoolLimits(max_bytes=len(tx) + 10))
    assert pool.add(tx)[1].ok
    assert pool.add(tx)[1].codespace == "mempool"  # duplicate
    assert pool.add(signed(key("bob"), 1, MsgSend(key("alice").address, MINT)))[1].code == 1  # bytes


def test_pipelined_nonces_enter_and_conflicts_do_not(node: DevNode) -> None:
    alice, bob = key("alice"), key("bob")
    assert node.submit(signed(alice, 1, MsgSend(bob.address, MINT)))[1].ok
    assert node.submit(signed(alice, 2, MsgSend(bob.address, MINT)))[1].ok
    # Spending more than is left after what the mempool already holds is refused at the door.
    refused = node.submit(signed(alice, 3, MsgSend(bob.address, START_BALANCE - MINT)))[1]
    assert refused.codespace == "bank"
    assert len(node.mempool) == 2


def test_recheck_after_a_block_drops_what_became_invalid(node: DevNode) -> None:
    alice, bob = key("alice"), key("bob")
    pool = Mempool(node.app)
    first = signed(alice, 1, MsgSend(bob.address, MINT))
    later = signed(alice, 2, MsgSend(bob.address, MINT))
    rival = signed(alice, 1, MsgSend(key("carol").address, 2 * MINT))  # same nonce as `first`, other content
    assert pool.add(first)[1].ok and pool.add(later)[1].ok
    assert not pool.add(rival)[1].ok  # nonce 1 is taken in the mempool's view
    pool._txs[b"rival"] = rival  # as if it had slipped in before the block
    node.app.finalize_block([first], 1, 10**18, key("authority-0").address)  # a block with only `first`
    node.app.commit()
    pool.update([first])
    assert list(pool._txs.values()) == [later]
