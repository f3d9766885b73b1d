"""Schemas of the ABCI 2.0 messages of CometBFT v0.38 that GridMint reads or writes (``tendermint.abci``).

Field numbers follow ``proto/tendermint/abci/types.proto`` at v0.38.25; fields the app never reads are left out of
request schemas (the decoder skips them) and fields it never sets are left out of response schemas.
"""

from __future__ import annotations

from gridmint.node.abci.proto import Schema

TIMESTAMP: Schema = {1: ("seconds", "int64"), 2: ("nanos", "int32")}
PUBLIC_KEY: Schema = {1: ("ed25519", "bytes"), 2: ("secp256k1", "bytes")}
VALIDATOR_UPDATE: Schema = {1: ("pub_key", PUBLIC_KEY), 2: ("power", "int64")}
EVENT_ATTRIBUTE: Schema = {1: ("key", "string"), 2: ("value", "string"), 3: ("index", "bool")}
EVENT: Schema = {1: ("type", "string"), 2: ("attributes", ("repeated", EVENT_ATTRIBUTE))}
EXEC_TX_RESULT: Schema = {1: ("code", "uint32"), 2: ("data", "bytes"), 3: ("log", "string"), 4: ("info", "string"),
                          5: ("gas_wanted", "int64"), 6: ("gas_used", "int64"), 7: ("events", ("repeated", EVENT)),
                          8: ("codespace", "string")}
SNAPSHOT: Schema = {1: ("height", "uint64"), 2: ("format", "uint32"), 3: ("chunks", "uint32"), 4: ("hash", "bytes"),
                    5: ("metadata", "bytes")}

REQUESTS: Schema = {
    1: ("echo", {1: ("message", "string")}),
    2: ("flush", {}),
    3: ("info", {1: ("version", "string"), 2: ("block_version", "uint64"), 3: ("p2p_version", "uint64"),
                 4: ("abci_version", "string")}),
    5: ("init_chain", {1: ("time", TIMESTAMP), 2: ("chain_id", "string"),
                       4: ("validators", ("repeated", VALIDATOR_UPDATE)), 5: ("app_state_bytes", "bytes"),
                       6: ("initial_height", "int64")}),
    6: ("query", {1: ("data", "bytes"), 2: ("path", "string"), 3: ("height", "int64"), 4: ("prove", "bool")}),
    8: ("check_tx", {1: ("tx", "bytes"), 2: ("type", "enum")}),
    11: ("commit", {}),
    12: ("list_snapshots", {}),
    13: ("offer_snapshot", {1: ("snapshot", SNAPSHOT), 2: ("app_hash", "bytes")}),
    14: ("load_snapshot_chunk", {1: ("height", "uint64"), 2: ("format", "uint32"), 3: ("chunk", "uint32")}),
    15: ("apply_snapshot_chunk", {1: ("index", "uint32"), 2: ("chunk", "bytes"), 3: ("sender", "string")}),
    16: ("prepare_proposal", {1: ("max_tx_bytes", "int64"), 2: ("txs", ("repeated", "bytes")), 5: ("height", "int64"),
                              6: ("time", TIMESTAMP), 8: ("proposer_address", "bytes")}),
    17: ("process_proposal", {1: ("txs", ("repeated", "bytes")), 4: ("hash", "bytes"), 5: ("height", "int64"),
                              6: ("time", TIMESTAMP), 8: ("proposer_address", "bytes")}),
    18: ("extend_vote", {1: ("hash", "bytes"), 2: ("height", "int64")}),
    19: ("verify_vote_extension", {1: ("hash", "bytes"), 2: ("validator_address", "bytes"), 3: ("height", "int64"),
                                   4: ("vote_extension", "bytes")}),
    20: ("finalize_block", {1: ("txs", ("repeated", "bytes")), 4: ("hash", "bytes"), 5: ("height", "int64"),
                            6: ("time", TIMESTAMP), 7: ("next_validators_hash", "bytes"),
                            8: ("proposer_address", "bytes")}),
}

RESPONSES: Schema = {
    1: ("exception", {1: ("error", "string")}),
    2: ("echo", {1: ("message", "string")}),
    3: ("flush", {}),
    4: ("info", {1: ("data", "string"), 2: ("version", "string"), 3: ("app_version", "uint64"),
                 4: ("last_block_height", "int64"), 5: ("last_block_app_hash", "bytes")}),
    6: ("init_chain", {2: ("validators", ("repeated", VALIDATOR_UPDATE)), 3: ("app_hash", "bytes")}),
    7: ("query", {1: ("code", "uint32"), 3: ("log", "string"), 4: ("info", "string"), 5: ("index", "int64"),
                  6: ("key", "bytes"), 7: ("value", "bytes"), 9: ("height", "int64"), 10: ("codespace", "string")}),
    9: ("check_tx", {1: ("code", "uint32"), 2: ("data", "bytes"), 3: ("log", "string"), 4: ("info", "string"),
                     5: ("gas_wanted", "int64"), 6: ("gas_used", "int64"), 7: ("events", ("repeated", EVENT)),
                     8: ("codespace", "string")}),
    12: ("commit", {3: ("retain_height", "int64")}),
    13: ("list_snapshots", {1: ("snapshots", ("repeated", SNAPSHOT))}),
    14: ("offer_snapshot", {1: ("result", "enum")}),
    15: ("load_snapshot_chunk", {1: ("chunk", "bytes")}),
    16: ("apply_snapshot_chunk", {1: ("result", "enum"), 2: ("refetch_chunks", ("repeated", "uint32")),
                                  3: ("reject_senders", ("repeated", "string"))}),
    17: ("prepare_proposal", {1: ("txs", ("repeated", "bytes"))}),
    18: ("process_proposal", {1: ("status", "enum")}),
    19: ("extend_vote", {1: ("vote_extension", "bytes")}),
    20: ("verify_vote_extension", {1: ("status", "enum")}),
    21: ("finalize_block", {1: ("events", ("repeated", EVENT)), 2: ("tx_results", ("repeated", EXEC_TX_RESULT)),
                            3: ("validator_updates", ("repeated", VALIDATOR_UPDATE)), 5: ("app_hash", "bytes")}),
}

ACCEPT, REJECT = 1, 2  # ProcessProposal / VerifyVoteExtension status
# OfferSnapshot results
OFFER_ACCEPT, OFFER_ABORT, OFFER_REJECT, OFFER_REJECT_FORMAT = 1, 2, 3, 4
# ApplySnapshotChunk results
CHUNK_ACCEPT, CHUNK_ABORT, CHUNK_RETRY, CHUNK_RETRY_SNAPSHOT, CHUNK_REJECT_SNAPSHOT = 1, 2, 3, 4, 5
