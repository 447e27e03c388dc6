"""The value types recipe fields are declared with, and the recipe's error type. A leaf module (nothing from
pugc), so both the recipe schema (pugc.config) and TRL's field check (pugc.training.trl_args) use it.

Scalars are strict: a string is not read as a number, nor 1 as true. One exception: an integral float is an
integer, since KFP hands dict parameters back with every number as a float. Ranges are declared on the type
(`integer(ge=1)`), so they reach the JSON Schema editors read (`pugc schema`).
"""
from __future__ import annotations

import difflib
from typing import Annotated, Any, Iterable

from pydantic import BeforeValidator, Field, Strict, StrictBool, StrictStr


class ConfigError(ValueError):
    """A recipe or override that does not fit the schema; the message names the key's path."""


class KeyProblem(ValueError):
    """Raised by a recipe section's own checks. `key` (relative to the section) is put after the section's
    path; without one the message names its keys itself."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message, self.key = message, key


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def integer(**bounds: Any) -> Any:
    """An int field, with bounds such as ge=1 (the bounds come before the coercion: the schema shows them)."""
    return Annotated[int, Field(**bounds), Strict(), BeforeValidator(_integral)]


def number(**bounds: Any) -> Any:
    """A float field (an int is a number too), with bounds such as ge=0, lt=1."""
    return Annotated[float, Field(**bounds), Strict()]


Int = integer()
Count = integer(ge=1)
NonNegativeInt = integer(ge=0)
Float = number()
NonNegative = number(ge=0)
Fraction = number(ge=0, le=1)
Bool = StrictBool
Str = StrictStr


def did_you_mean(key: str, known: Iterable[str]) -> str:
    hint = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def unknown_key_error(key: str, known: Iterable[str], path: str) -> ConfigError:
    return ConfigError(f"unknown key '{path}'{did_you_mean(key, known)}")
