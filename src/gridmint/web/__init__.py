"""The explorer: a small web service beside a node, pages that read the chain through it."""
