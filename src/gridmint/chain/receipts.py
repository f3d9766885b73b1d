"""Usage receipts: what a miner served through a gateway on one credit line, signed so the chain can check it.

A receipt is **cumulative**: it states everything the miner served on one credit line (``line`` is the line's id,
unique for the chain's life, so a closed and reopened line starts again from zero) up to now — tokens, grains
owed and requests. The chain keeps per (line, miner) what it has paid, and an entry pays only the difference
between its receipt and that record, so:
- a receipt replayed, or an older one sent after a newer, pays nothing and is refused;
- a miner is never paid less than it signed for once a later receipt lands (a later receipt covers the earlier);
- the chain does one signature check per entry, whatever the number of requests it aggregates.

Two parties sign the same fields, each under its own domain so neither signature can stand for the other:
- the **miner's** signature (its hotkey): "I served this much on this line through this gateway";
- the gateway's **acknowledgement** (the gateway's account key): "I owe this miner this much from this line".
A gateway settles with the miner's signature (its own consent is the transaction it signs); a miner claims with
both, so a receipt the gateway acknowledged is paid even if the gateway never settles it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridmint.chain import codec
from gridmint.chain.crypto import PrivateKey, address_of, verify

MINER_DOMAIN = "gridmint/receipt/v1"
GATEWAY_DOMAIN = "gridmint/receipt-ack/v1"


@dataclass(frozen=True)
class Receipt:
    chain_id: str
    line: int  # the credit line's id (``/credit/line/...`` answers it)
    gateway: bytes  # 20-byte address of the gateway the line is with
    consumer: bytes  # 20-byte address of the consumer who holds the line
    miner: bytes  # 20-byte address of the miner's hotkey
    tokens: int  # cumulative tokens served on this line by this miner
    grains: int  # cumulative grains owed to the miner for them (the gateway's fee comes on top)
    requests: int  # cumulative requests

    def fields(self) -> list[object]:
        return [self.chain_id, self.line, self.gateway, self.consumer, self.miner, self.tokens, self.grains,
                self.requests]


def receipt_message(receipt: Receipt, domain: str) -> bytes:
    return codec.encode([domain, *receipt.fields()])


def sign_receipt(key: PrivateKey, receipt: Receipt) -> bytes:
    """The miner's signature (``key`` is the miner's hotkey and must be ``receipt.miner``)."""
    return key.sign(receipt_message(receipt, MINER_DOMAIN))


def acknowledge_receipt(key: PrivateKey, receipt: Receipt) -> bytes:
    """The gateway's acknowledgement (``key`` is the gateway's account key and must be ``receipt.gateway``)."""
    return key.sign(receipt_message(receipt, GATEWAY_DOMAIN))


def miner_signed(receipt: Receipt, public_key: bytes, signature: bytes) -> bool:
    return address_of(public_key) == receipt.miner and verify(public_key, receipt_message(receipt, MINER_DOMAIN),
                                                              signature)


def gateway_acknowledged(receipt: Receipt, public_key: bytes, signature: bytes) -> bool:
    return address_of(public_key) == receipt.gateway and verify(
        public_key, receipt_message(receipt, GATEWAY_DOMAIN), signature)
