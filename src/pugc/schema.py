"""The recipe format as a JSON Schema (`pugc schema`), for editors: the shipped recipes name it in their first
line (`# yaml-language-server: $schema=recipe.schema.json`), so an editor with a YAML language server
validates and completes a recipe as it is typed.

It is generated from the same declarations the loader checks (pugc.config's dataclasses, their types, ranges
and docstrings); `dpo_training:` lists TRL's DPOConfig and CPOConfig fields of the installed TRL with their
help text, since a recipe writes them beside the project's own keys. Rules between fields (an effective batch
that must multiply out, a gate that needs prompts) are checked at load only.
"""
from __future__ import annotations

import json
import math
from typing import Any

from pydantic import TypeAdapter

SCHEMA_FILE = "recipe.schema.json"  # beside the recipes it describes (recipes/)
HELP_CHARS = 400


def recipe_json_schema() -> dict:
    from pugc.config import Recipe

    schema = TypeAdapter(Recipe).json_schema()
    training = schema["$defs"]["DPOTrainingConfig"]
    training["properties"].pop("trainer")
    for name, spec in sorted(_trl_properties().items()):
        training["properties"].setdefault(name, spec)
    training["additionalProperties"] = False
    training["description"] = (training.get("description", "") + "\n\nBesides these keys: the fields of TRL's "
                               "DPOConfig (method dpo) or CPOConfig (method simpo), as TRL names them.").strip()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "PUGC recipe", **schema}


def _trl_properties() -> dict[str, dict]:
    from pugc.training.trl_args import strict_type, trainer_fields

    properties: dict[str, dict] = {}
    for method in ("dpo", "simpo"):
        for name, field in trainer_fields(method).items():
            strict = strict_type(field.type)
            spec = TypeAdapter(strict).json_schema() if strict is not None else {}
            help_text = " ".join(str(field.metadata.get("help", "")).split())
            if help_text:
                spec["description"] = help_text[:HELP_CHARS] + ("..." if len(help_text) > HELP_CHARS else "")
            default = field.default
            if isinstance(default, (bool, int, str)) or (isinstance(default, float) and math.isfinite(default)):
                spec["default"] = default
            properties.setdefault(name, spec)
    return properties


def schema_text(schema: dict[str, Any] | None = None) -> str:
    return json.dumps(schema or recipe_json_schema(), indent=2, sort_keys=True) + "\n"
