"""The chain's state machine: deterministic, integer-only, the same under the devnode and CometBFT."""
