"""Prompt templates: one YAML file per prompt, `$name` placeholders, rendered into engine Prompts.

Templates are data, not f-strings, so a prompt can be read, diffed and swapped without touching code.
A file holds `user` (required), optionally `system` and `assistant_prefix`, and optional named `parts`
that the stage chooses between (e.g. the reference section of the judge prompt, on or off).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from string import Template

import yaml

from pugc.engines.base import Prompt
from pugc.safety import neutralize


class Trusted(str):
    """Text that is already safe to insert (a rendered part of a template); render leaves it as is."""


def _safe(values: dict) -> dict:
    return {k: v if isinstance(v, Trusted) else neutralize(str(v)) for k, v in values.items()}


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    user: str
    system: str = ""
    assistant_prefix: str = ""
    parts: dict = field(default_factory=dict)

    def render(self, **values: str) -> Prompt:
        """Fill every `$placeholder` with neutralised text (see pugc.safety); a missing one raises KeyError."""
        values = _safe(values)
        messages = []
        if self.system:
            messages.append({"role": "system", "content": Template(self.system).substitute(values)})
        messages.append({"role": "user", "content": Template(self.user).substitute(values)})
        return Prompt(messages=tuple(messages), assistant_prefix=Template(self.assistant_prefix).substitute(values))

    def part(self, name: str, **values: str) -> Trusted:
        return Trusted(Template(self.parts[name]).substitute(_safe(values)))


@lru_cache(maxsize=None)
def load_template(name: str) -> PromptTemplate:
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    unknown = set(data) - {"system", "user", "assistant_prefix", "parts"}
    if unknown or "user" not in data:
        raise ValueError(f"prompt {name}.yaml: needs 'user'; unknown keys {sorted(unknown)}")
    return PromptTemplate(
        name=name,
        user=data["user"].strip("\n"),
        system=(data.get("system") or "").strip(),
        assistant_prefix=data.get("assistant_prefix") or "",
        parts=dict(data.get("parts") or {}),
    )


def all_template_text() -> str:
    """Every template's text, for training the tiny tokenizer on the words the prompts use."""
    chunks = []
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".yaml"):
            chunks.append(entry.read_text(encoding="utf-8"))
    return "\n".join(sorted(chunks))
