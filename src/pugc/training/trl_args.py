"""Validate the TRL fields of a recipe's `dpo_training:` section against TRL's own config class.

The section carries DPOConfig (or, for SimPO, CPOConfig) fields as TRL names them. TRL would only notice a
misspelt key when the trainer is built, and an unknown `loss_type` only at the first training step; both fail
here at recipe load instead.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing

from pugc.config import ConfigError, _coerce, unknown_key_error

SIMPLE_TYPES = (int, float, bool, str, type(None))


def trainer_config_class(method: str):
    if method == "simpo":
        from trl.experimental.cpo import CPOConfig

        return CPOConfig
    from trl import DPOConfig

    return DPOConfig


def _is_simple(tp: typing.Any) -> bool:
    if tp in SIMPLE_TYPES:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_is_simple(a) for a in args)
    return origin is list and args in ((str,), (int,), (float,))


def _allowed_loss_types(field: dataclasses.Field) -> set[str]:
    """The loss names TRL documents in the field's help text."""
    return set(re.findall(r"`'([a-z_]+)'`", field.metadata.get("help", "")))


def validate_trainer_args(method: str, args: dict, path: str) -> dict:
    config_class = trainer_config_class(method)
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    checked = {}
    for key, value in args.items():
        key_path = f"{path}.{key}"
        if key not in fields:
            raise unknown_key_error(key, fields, key_path)
        field_type = fields[key].type
        if typing.get_origin(field_type) is list and isinstance(value, str):
            field_type = str  # TRL list fields such as loss_type also take one name
        checked[key] = _coerce(value, field_type, key_path) if _is_simple(field_type) else value
    loss = checked.get("loss_type")
    if loss is not None and method == "dpo":
        allowed = _allowed_loss_types(fields["loss_type"])
        for name in [loss] if isinstance(loss, str) else loss:
            if allowed and name not in allowed:
                raise ConfigError(f"{path}.loss_type: {name!r} is not a DPO loss; one of {', '.join(sorted(allowed))}")
    return checked
