"""The inference network off chain: the signed protocol's policy, miners, backends and validators."""
