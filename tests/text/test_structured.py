"""Synthetic JSON valid against a schema, or a clear refusal."""

import random

import jsonschema
import pytest

from supernode.text.structured import UnsupportedSchema, value_for_schema

SCHEMAS = [
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 5},
                                      "days": {"type": "integer", "minimum": 1, "maximum": 7},
                                      "unit": {"enum": ["c", "f"]}},
     "required": ["city", "days"], "additionalProperties": False},
    {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 2},
    {"$defs": {"p": {"type": "object", "properties": {"x": {"type": "boolean"}},
                     "required": ["x"]}},
     "type": "object", "properties": {"ps": {"type": "array", "items": {"$ref": "#/$defs/p"}}}},
    {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
    {"allOf": [{"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]},
               {"properties": {"b": {"type": "integer", "multipleOf": 5, "minimum": 3}},
                "required": ["b"]}]},
    {"type": "object"},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_values_validate(schema: dict) -> None:
    """Generated values validate against their schema, for many seeds."""
    for seed in range(20):
        jsonschema.validate(value_for_schema(schema, random.Random(seed)), schema)


@pytest.mark.parametrize("schema, reason", [
    ({"type": "string", "pattern": "^[a-z]+$"}, "pattern"),
    ({"type": "integer", "minimum": 9, "maximum": 3}, "empty numeric range"),
    ({"type": "object", "properties": {"x": {"type": "wat"}}}, "invalid JSON schema"),
    ({"$ref": "https://example.com/schema.json"}, "local \\$ref"),
    ([1, 2], "must be an object"),
])
def test_unsatisfiable_schemas_are_refused(schema: object, reason: str) -> None:
    """A schema the emulator cannot honour raises UnsupportedSchema saying why."""
    with pytest.raises(UnsupportedSchema, match=reason):
        value_for_schema(schema, random.Random(0))
