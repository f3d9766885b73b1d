"""Everything off chain reads and writes the chain through here: wallets, keys and the chain client."""
