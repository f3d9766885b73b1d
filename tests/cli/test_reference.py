"""docs/chain.md is generated from the modules; this keeps the file in the repository equal to what they say."""

from __future__ import annotations

from pathlib import Path

import gridmint.cli.main  # noqa: F401  (registers every error the CLI can meet, as `gridmint reference` does)
from gridmint.cli.reference import render

DOCS = Path(__file__).parents[2] / "docs" / "chain.md"


def test_the_chain_reference_is_current() -> None:
    assert DOCS.read_text() == render(), "docs/chain.md is stale: run `gridmint reference > docs/chain.md`"


def test_every_module_and_message_is_documented() -> None:
    text = render()
    for heading in ("## bank", "## authority", "## subnets", "## market", "## escrow", "## credit"):
        assert heading in text
    for message_type in ("`bank/send`", "`credit/settle`", "`market/create_deployment`", "`weights/commit`"):
        assert message_type in text
    assert "| credit/7 | batch_replayed |" in text
