"""Property: random sequences of transfers, failures included, never break the supply invariant."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmint.chain.app import App
from gridmint.chain.bank import MsgSend
from gridmint.chain.store import Store
from tests.support.chain import FEE, MINT, START_BALANCE, genesis, key, signed

NAMES = ("alice", "bob", "carol")
EXAMPLES = int(os.environ.get("GRIDMINT_PROPERTY_EXAMPLES", "1000"))

transfer = st.tuples(
    st.sampled_from(NAMES),  # sender
    st.sampled_from((*NAMES, "dave")),  # recipient (dave starts empty)
    st.one_of(st.integers(1, 5 * MINT), st.integers(START_BALANCE - MINT, 3 * START_BALANCE)),  # amount
    st.sampled_from((FEE, FEE, 3 * FEE, FEE - 1, 2 * START_BALANCE)),  # fee, some too low or unaffordable
    st.sampled_from((0, 0, 0, 0, -1, 1)),  # nonce offset: mostly right, sometimes replayed or ahead
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(st.lists(transfer, max_size=6), min_size=1, max_size=4))
def test_supply_is_always_balances_plus_held(blocks: list[list[tuple[str, str, int, int, int]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = App(Store(Path(folder) / "s.sqlite"))
        app.init_chain(genesis(accounts=NAMES))
        nonces = dict.fromkeys(NAMES, 0)
        for height, block in enumerate(blocks, start=1):
            txs = []
            for sender, recipient, amount, fee, offset in block:
                nonce = nonces[sender] + 1 + offset
                txs.append(signed(key(sender), nonce, MsgSend(key(recipient).address, amount), fee=fee))
                if offset == 0:
                    nonces[sender] += 1
            app.finalize_block(txs, height, height * 10**9, key("authority-0").address)
            app.commit()
            # A refused envelope does not use its nonce: continue from the nonces the chain accepted.
            nonces = {name: _nonce(app, name) for name in NAMES}
            assert app.check_invariants() == []
        app.store.close()


def _nonce(app: App, name: str) -> int:
    from gridmint.chain.state import CommittedView

    return CommittedView(app.store).get_int(b"tx/nonce/" + key(name).address)
