"""The errors of the ``subnets`` codespace, in one table: neurons.py (the layout that staking, weights and emission
read too) raises the first two, subnets.py the rest, and neither can import the other's without a cycle."""

from __future__ import annotations

from gridmint.chain.errors import register

NAME = "subnets"

SUBNET_NOT_FOUND = register(NAME, 1, "subnet_not_found")
NOT_REGISTERED = register(NAME, 2, "not_registered")
NOT_OWNER = register(NAME, 3, "not_owner")
UNKNOWN_PARAM = register(NAME, 4, "unknown_param")
PARAM_OUT_OF_BOUNDS = register(NAME, 5, "param_out_of_bounds")
HOTKEY_REGISTERED = register(NAME, 6, "hotkey_registered")
HOTKEY_OWNED = register(NAME, 7, "hotkey_owned")
SUBNET_FULL = register(NAME, 8, "subnet_full")
INVALID_ENDPOINT = register(NAME, 9, "invalid_endpoint")
RATE_LIMITED = register(NAME, 10, "rate_limited")
TOO_MANY_SUBNETS = register(NAME, 11, "too_many_subnets")
INVALID_MODALITY = register(NAME, 12, "invalid_modality")
BURN_ABOVE_LIMIT = register(NAME, 13, "burn_above_limit")
EPOCH_TOO_COSTLY = register(NAME, 14, "epoch_too_costly")
PRICE_ABOVE_LIMIT = register(NAME, 15, "price_above_limit")
