"""Rules for untrusted text (UGC, prompt sets, a served model's replies), applied where it enters the run.

Each rule either repairs text in a stated way or tells the caller to quarantine the record; none raises on any
input, and each runs in time linear in its input:
- A lone surrogate (half of a UTF-16 pair: valid JSON as an escape such as "\\ud83d", common in scraped text
  cut inside an emoji) cannot be encoded as UTF-8, so tokenizers and writers fail on it: it becomes U+FFFD.
  A valid pair has already become one character when the JSON was parsed, so every surrogate left is lone.
- Control characters (C0 other than tab, newline and carriage return; DEL; C1) carry no meaning for a model and
  confuse tokenizers and viewers: removed from the text a model reads.
- JSON nested deeper than a bound is quarantined, not walked: record copies and writers recurse.
"""
from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_NESTING = 32  # levels of objects and arrays in one input record


def without_lone_surrogates(text: str) -> str:
    return _LONE_SURROGATE.sub(REPLACEMENT, text)


def has_lone_surrogates(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def without_control_characters(text: str) -> str:
    return _CONTROL.sub("", text)


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def repair_surrogates(value: Any) -> tuple[Any, bool]:
    """`value` (freshly parsed JSON: repaired in place) with every lone surrogate in its strings and keys
    replaced by U+FFFD, and whether anything changed. Walks without recursion, so any depth is safe."""
    if isinstance(value, str):
        return (without_lone_surrogates(value), True) if has_lone_surrogates(value) else (value, False)
    changed = False
    stack = [value] if isinstance(value, (dict, list)) else []
    while stack:
        node = stack.pop()
        if isinstance(node, dict) and any(has_lone_surrogates(key) for key in node):
            items = list(node.items())
            node.clear()
            node.update((without_lone_surrogates(key), item) for key, item in items)
            changed = True
        for slot, item in (node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(item, (dict, list)):
                stack.append(item)
            elif isinstance(item, str) and has_lone_surrogates(item):
                node[slot] = without_lone_surrogates(item)
                changed = True
    return value, changed


def nesting_exceeds(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether objects and arrays in `value` nest deeper than `limit` levels (the top level is 1)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
