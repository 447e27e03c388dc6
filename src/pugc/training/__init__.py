"""Preference optimisation (DPO, SimPO) with TRL."""
