"""Load ``ModelSpec`` profiles from the TOML files shipped in ``profiles/``."""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from importlib import resources

from supernode.models.spec import ModelSpec

_PACKAGE = "supernode.models.profiles"


def available_models() -> tuple[str, ...]:
    """Names of the shipped model profiles."""
    files = resources.files(_PACKAGE).iterdir()
    return tuple(sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml")))


@functools.cache
def load_model(name: str) -> ModelSpec:
    """The shipped profile ``name`` (e.g. ``"deepseek-r1"``); ValueError if unknown."""
    if name not in available_models():
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    data = tomllib.loads(resources.files(_PACKAGE).joinpath(f"{name}.toml").read_text("utf-8"))
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"model profile {name}: unknown keys {sorted(unknown)}")
    return ModelSpec(**data)
