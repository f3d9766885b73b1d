"""Nodes that run the chain's app: the embedded devnode and its CometBFT-compatible RPC."""
