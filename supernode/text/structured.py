"""Synthetic JSON valid against a JSON Schema: tool-call arguments and `response_format` content.

`value_for_schema(schema, rng)` builds a value from the schema's own constraints (types,
properties and required, enum/const, ranges, lengths, items, $ref into $defs, anyOf/oneOf/
allOf) and then validates it with `jsonschema`; a schema it cannot satisfy (a string
`pattern`, contradictory constraints, an invalid schema) raises `UnsupportedSchema` with the
reason, which the API returns as a 400: content the schema rejects is never sent.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import jsonschema
import referencing.exceptions

MAX_DEPTH = 12
"""Nesting beyond this (e.g. a recursive $ref) takes the smallest value the schema allows."""
_WORDS = ("alpha", "bravo", "delta", "echo", "kilo", "lima", "oscar", "sierra", "tango",
          "victor", "zulu", "amber", "cobalt", "maple", "river", "stone", "cloud", "north")


class UnsupportedSchema(ValueError):
    """The emulator cannot produce JSON for this schema (HTTP 400)."""


def value_for_schema(schema: Any, rng: random.Random) -> Any:
    """A JSON value valid against `schema` (a JSON Schema as parsed JSON)."""
    if schema is True or schema == {}:
        schema = {"type": "object"}
    if not isinstance(schema, dict):
        raise UnsupportedSchema("a JSON schema must be an object")
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise UnsupportedSchema(f"invalid JSON schema: {e.message}") from None
    except (TypeError, ValueError, RecursionError) as e:
        raise UnsupportedSchema(f"invalid JSON schema: {e}") from None
    try:
        value = _Builder(schema, rng).build(schema, 0)
        error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    except (RecursionError, referencing.exceptions.Unresolvable, KeyError, TypeError,
            ValueError, OverflowError) as e:
        raise UnsupportedSchema(f"cannot produce JSON for this schema: {e}") from None
    if error is not None:
        raise UnsupportedSchema("cannot produce JSON for this schema: "
                                f"{error.message} (at {'/'.join(map(str, error.path)) or '/'})")
    return value


def dumps(value: Any) -> str:
    """Compact-ish ASCII JSON, as a model writes it (one token never splits a character)."""
    return json.dumps(value, ensure_ascii=True, separators=(", ", ": "))


class _Builder:
    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def build(self, schema: Any, depth: int) -> Any:
        if schema is True or not isinstance(schema, dict):
            return {}
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            if not schema["enum"]:
                raise UnsupportedSchema("empty enum")
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [self._resolve(s) for s in schema[key]]
                non_null = [s for s in options if s.get("type") != "null"] or options
                return self.build({**_without(schema, key), **non_null[0]}, depth + 1)
        if schema.get("allOf"):
            merged = _without(schema, "allOf")
            for part in schema["allOf"]:
                merged = _merge(merged, self._resolve(part))
            return self.build(merged, depth + 1)
        kind = _type_of(schema)
        return getattr(self, f"_{kind}")(schema, depth)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                return schema
            if not ref.startswith("#"):
                raise UnsupportedSchema(f"only local $ref is supported, got {ref!r}")
            target: Any = self.root
            for part in filter(None, ref[1:].split("/")):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**_without(schema, "$ref"), **target}
        raise UnsupportedSchema("$ref chain too long")

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = [k for k in schema.get("required", []) if isinstance(k, str)]
        keys = list(dict.fromkeys(required + ([] if depth >= MAX_DEPTH else list(props))))
        extra = schema.get("additionalProperties", True)
        low = schema.get("minProperties", 0)
        if not props and extra is not False and depth < MAX_DEPTH:  # free-form: some content
            low = max(low, min(self.rng.randint(1, 3), schema.get("maxProperties", 3)))
        out = {k: self.build(props.get(k, {"type": "string"}), depth + 1) for k in keys}
        n = 0
        while len(out) < low and extra is not False:
            value = extra if isinstance(extra, dict) else {"type": ["string", "integer"][n % 2]}
            out[f"{_WORDS[n % len(_WORDS)]}_{n}"] = self.build(value, depth + 1)
            n += 1
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", low + 3)
        n = low if depth >= MAX_DEPTH else self.rng.randint(low, max(low, min(high, low + 3)))
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {"type": "string"})
        out = [self.build(prefix[i] if i < len(prefix) else items, depth + 1) for i in range(n)]
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in out}) < n:
            raise UnsupportedSchema("cannot make unique array items for this schema")
        return out

    def _string(self, schema: dict[str, Any], depth: int) -> str:
        if "pattern" in schema:
            raise UnsupportedSchema("string 'pattern' is not supported by the emulator")
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt]
        low, high = schema.get("minLength", 1), schema.get("maxLength", 24)
        text = " ".join(self.rng.choice(_WORDS) for _ in range(4))
        while len(text) < low:
            text += " " + self.rng.choice(_WORDS)
        return text[:max(low, min(high, len(text)))].rstrip() or text[:max(low, min(high, 1))]

    def _integer(self, schema: dict[str, Any], depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        multiple = schema.get("multipleOf")
        value = self.rng.randint(low, high)
        if isinstance(multiple, int) and multiple > 0:
            value = -(-low // multiple) * multiple
        return value

    def _number(self, schema: dict[str, Any], depth: int) -> float:
        if "multipleOf" in schema:
            return float(self._integer(schema, depth))
        low, high = _bounds(schema, integer=False)
        return round(self.rng.uniform(low, high), 3)

    def _boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: dict[str, Any], depth: int) -> None:
        return None


_FORMATS = {"date": "2025-01-20", "date-time": "2025-01-20T12:00:00Z", "time": "12:00:00Z",
            "email": "user@example.com", "uri": "https://example.com/", "uuid":
            "123e4567-e89b-12d3-a456-426614174000", "ipv4": "192.0.2.1", "hostname":
            "example.com"}


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = ("object" if "properties" in schema else "array" if "items" in schema
                else "string")
    if kind not in ("object", "array", "string", "integer", "number", "boolean", "null"):
        raise UnsupportedSchema(f"unknown type {kind!r}")
    return str(kind)


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[Any, Any]:
    step = 1 if integer else 1e-3
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is None and isinstance(schema.get("exclusiveMinimum"), (int, float)):
        low = schema["exclusiveMinimum"] + step
    if high is None and isinstance(schema.get("exclusiveMaximum"), (int, float)):
        high = schema["exclusiveMaximum"] - step
    if low is None:
        low = 0 if high is None or high >= 0 else high - 100
    if high is None:
        high = low + 100
    if integer:
        low, high = math.ceil(low), math.floor(high)
    if low > high:
        raise UnsupportedSchema("empty numeric range")
    return low, high


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a, **b}
    if "properties" in a and "properties" in b:
        out["properties"] = {**a["properties"], **b["properties"]}
    if "required" in a and "required" in b:
        out["required"] = list(dict.fromkeys(a["required"] + b["required"]))
    return out
