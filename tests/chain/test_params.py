"""Module parameters as handlers read them from state."""

from __future__ import annotations

from pathlib import Path

from gridmint.chain import bank
from gridmint.chain.params import params_to_json, read_params
from gridmint.chain.state import BlockState, CommittedView
from tests.support.chain import MIN_TX_FEE, make_app


def test_read_params_gives_defaults_where_nothing_is_stored(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    state = BlockState(app.store)
    state.delete(bank.PARAMS_KEY)
    assert read_params(state, bank.PARAMS_KEY, bank.Params) == bank.Params()


def test_read_params_follows_a_write_and_reuses_what_it_decoded(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    view = CommittedView(app.store)
    first = read_params(view, bank.PARAMS_KEY, bank.Params)
    assert first.min_tx_fee == MIN_TX_FEE
    assert read_params(view, bank.PARAMS_KEY, bank.Params) is first  # the same bytes decode once
    state = BlockState(app.store)
    state.set_value(bank.PARAMS_KEY, params_to_json(bank.Params(min_tx_fee=MIN_TX_FEE * 3)))
    assert read_params(state, bank.PARAMS_KEY, bank.Params).min_tx_fee == MIN_TX_FEE * 3
    assert read_params(view, bank.PARAMS_KEY, bank.Params).min_tx_fee == MIN_TX_FEE  # committed state unchanged
