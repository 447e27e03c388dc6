"""PUGC: preference data from user-generated content, and DPO on it."""

__version__ = "0.1.0"
