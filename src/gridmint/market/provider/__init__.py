"""The provider daemon: inventory, bidding, runtimes, the endpoint tenants and their users reach."""
