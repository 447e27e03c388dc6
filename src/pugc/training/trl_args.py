"""Validate the TRL fields of a recipe's `dpo_training:` section against TRL's own config class.

The section carries DPOConfig (or, for SimPO, CPOConfig) fields as TRL names them. TRL would only notice a
misspelt key when the trainer is built, and an unknown `loss_type` only at the first training step; both fail
here at recipe load instead. Values of TRL's simple field types (numbers, flags, strings, their Optional and
list forms) are checked with the recipe's own strict scalar types (pugc.recipe_types).
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from typing import Any, Iterable, Union

from pydantic import TypeAdapter, ValidationError

from pugc.recipe_types import Bool, ConfigError, Float, Int, Str, unknown_key_error

SCALARS = {int: Int, float: Float, bool: Bool, str: Str, type(None): type(None)}


def trainer_config_class(method: str):
    if method == "simpo":
        from trl.experimental.cpo import CPOConfig

        return CPOConfig
    from trl import DPOConfig

    return DPOConfig


def strict_type(tp: Any) -> Any | None:
    """TRL's annotation with the recipe's strict scalars, or None when it is not a simple type (then the value
    goes to TRL as is)."""
    if tp in SCALARS:
        return SCALARS[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        members = [strict_type(arg) for arg in args]
        return None if None in members else Union[tuple(members)]
    if origin is list and args in ((str,), (int,), (float,)):
        return list[SCALARS[args[0]]]
    return None


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def trainer_fields(method: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(trainer_config_class(method)) if f.init}


def _allowed_loss_types(field: dataclasses.Field) -> set[str]:
    """The loss names TRL documents in the field's help text."""
    return set(re.findall(r"`'([a-z_]+)'`", field.metadata.get("help", "")))


def validate_trainer_args(method: str, args: dict, path: str, known_own: Iterable[str] = ()) -> dict:
    fields = trainer_fields(method)
    checked = {}
    for key, value in args.items():
        key_path = f"{path}.{key}"
        if key not in fields:
            raise unknown_key_error(key, [*fields, *known_own], key_path)
        field_type = fields[key].type
        if typing.get_origin(field_type) is list and isinstance(value, str):
            field_type = str  # TRL list fields such as loss_type also take one name
        strict = strict_type(field_type)
        checked[key] = value if strict is None else _checked(strict, value, key_path)
    loss = checked.get("loss_type")
    if loss is not None and method == "dpo":
        allowed = _allowed_loss_types(fields["loss_type"])
        for name in [loss] if isinstance(loss, str) else loss:
            if allowed and name not in allowed:
                raise ConfigError(f"{path}.loss_type: {name!r} is not a DPO loss; one of {', '.join(sorted(allowed))}")
    return checked


def _checked(tp: Any, value: Any, path: str) -> Any:
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError:
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}") from None


def _describe(tp: Any) -> str:
    names = {Int: "an integer", Float: "a number", Bool: "true/false", Str: "a string", type(None): "null"}
    if typing.get_origin(tp) is Union:
        return " or ".join(_describe(arg) for arg in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    return names.get(tp, str(tp))


