"""The gateway: an OpenAI-compatible entry that routes to the best-ranked miners, meters and settles on chain."""
