"""The validator: challenges miners, scores their signed answers, and turns the scores into weights on chain."""
