"""Model backends behind one protocol, chosen by name (see ``registry.load_backend``)."""
