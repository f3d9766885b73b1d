"""GridMint: an open network for decentralized AI compute."""

__version__ = "0.1.0"
