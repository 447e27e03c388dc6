"""Lineage on KFP artifacts in the one form that survives the KFP backend unchanged: flat strings and numbers.

The open-source backend stores artifact metadata in ML Metadata and hands it to downstream tasks converted
(backend/src/v2/metadata/converter.go): a list comes back as {"list": [...]}, a dict as {"struct": {...}},
a bool as the number 0 or 1, and a null is refused, failing the task. KFP's local runner hands back plain
Python values, so code that reads nested metadata passes locally and fails on a cluster. Hence: nested values
are written as JSON strings, bools as 0/1, nulls left out, and readers decode.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

NESTED_KEYS = ("dropped", "metrics", "training", "licenses", "spent_before", "spent")  # dicts, stored as JSON strings


def encode(lineage: Mapping[str, Any]) -> dict[str, str | int | float]:
    """Metadata for an artifact: nulls dropped, bools as 0/1, dicts and lists as JSON strings."""
    flat: dict[str, str | int | float] = {}
    for key, value in lineage.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
        elif not isinstance(value, (str, int, float)):
            raise TypeError(f"lineage {key!r}: {type(value).__name__} cannot be artifact metadata")
        flat[key] = value
    return flat


def decode(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The lineage back from metadata as any runner hands it over (numbers may arrive as floats)."""
    lineage: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in NESTED_KEYS and isinstance(value, str):
            value = json.loads(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        lineage[key] = value
    return lineage
