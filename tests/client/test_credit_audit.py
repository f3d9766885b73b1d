"""The consumer's audit: chain payments against the gateway's records and the consumer's own."""

from __future__ import annotations

from gridmint.client.credit_audit import Paid, UsageRecord, audit_line

MINER_A, MINER_B = "gm1minera", "gm1minerb"


def _records() -> list[UsageRecord]:
    return [UsageRecord("r1", 4, MINER_A, 10, 100, "settled"), UsageRecord("r2", 4, MINER_A, 5, 50, "settled"),
            UsageRecord("r3", 4, MINER_B, 7, 70, "settled"), UsageRecord("r4", 4, MINER_B, 1, 10, "unsettled")]


def test_payments_that_match_the_records_are_clean() -> None:
    report = audit_line(4, _records(), {MINER_A: Paid(15, 150, 2), MINER_B: Paid(7, 70, 1)})
    assert report.clean and report.settled_grains == 220 and report.records == 4


def test_an_entry_paid_above_the_records_is_found() -> None:
    report = audit_line(4, _records(), {MINER_A: Paid(15, 150, 2), MINER_B: Paid(9, 95, 2)})
    assert [d.subject for d in report.differences] == [MINER_B]
    assert "95 grains" in report.differences[0].what and "70 grains" in report.differences[0].what


def test_a_miner_paid_that_the_gateway_never_listed_is_found() -> None:
    paid = {MINER_A: Paid(15, 150, 2), MINER_B: Paid(7, 70, 1), "gm1stranger": Paid(1, 9, 1)}
    report = audit_line(4, _records(), paid)
    assert [d.subject for d in report.differences] == ["gm1stranger"]


def test_settled_usage_missing_on_chain_is_found() -> None:
    report = audit_line(4, _records(), {MINER_A: Paid(15, 150, 2)})
    assert [d.subject for d in report.differences] == [MINER_B]


def test_a_pending_batch_widens_what_is_expected() -> None:
    records = [*_records()[:3], UsageRecord("r4", 4, MINER_B, 1, 10, "pending")]
    for paid_b in (Paid(7, 70, 1), Paid(8, 80, 2)):
        assert audit_line(4, records, {MINER_A: Paid(15, 150, 2), MINER_B: paid_b}).clean
    assert not audit_line(4, records, {MINER_A: Paid(15, 150, 2), MINER_B: Paid(8, 81, 2)}).clean


def test_the_consumers_own_costs_are_compared_request_by_request() -> None:
    paid = {MINER_A: Paid(15, 150, 2), MINER_B: Paid(7, 70, 1)}
    own = {"r1": 100, "r2": 49, "r3": 70, "r5": 5}
    report = audit_line(4, _records(), paid, own)
    assert [d.subject for d in report.differences] == ["r2", "r4", "r5"]
