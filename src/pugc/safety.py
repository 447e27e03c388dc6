"""Untrusted text (UGC, generated questions and responses) must not steer a prompt's structure.

Two layers, each where it has what it needs:
- `neutralize_markers`: when text is inserted into a prompt template, section headers (`###...`) and the
  judge's verdict marker (`[RESULT]`) it contains are defused, so it cannot open, close or fake a section.
- `neutralize_special_tokens`: the engine, which knows its tokenizer, defuses that tokenizer's special-token
  strings (and the common chat-control strings) in message contents, so text from strangers is tokenised as
  plain text, never as an end-of-turn or a role switch.
Both keep the text readable (a space is inserted) and are idempotent.
"""
from __future__ import annotations

import re
from typing import Iterable

_RESULT = re.compile(r"\[\s*RESULT\s*\]", re.IGNORECASE)
_HEADER = re.compile(r"#{3,}")
# Chat-control strings of common model families, whatever this tokenizer's own are.
_CONTROL = re.compile(
    r"<\|[^<>|\n]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<(?:bos|eos|pad|unk)>",
    re.IGNORECASE,
)


def _defuse(token: str) -> str:
    return token[0] + " " + token[1:]


def neutralize_markers(text: str) -> str:
    text = _RESULT.sub("(RESULT)", text)
    return _HEADER.sub("##", text)


def neutralize_special_tokens(text: str, special_tokens: Iterable[str] = ()) -> str:
    for token in sorted({t for t in special_tokens if t and len(t) > 1}, key=len, reverse=True):
        if token in text:
            text = text.replace(token, _defuse(token))
    return _CONTROL.sub(lambda m: _defuse(m.group(0)), text)


def neutralize(text: str, special_tokens: Iterable[str] = ()) -> str:
    return neutralize_special_tokens(neutralize_markers(text), special_tokens)
