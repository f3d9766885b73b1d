"""The miner: an OpenAI-shaped, signed HTTP server in front of a model backend."""
