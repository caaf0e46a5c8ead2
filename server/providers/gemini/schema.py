"""JSON Schema (what OpenAI clients write for tool parameters and `json_schema` response
formats) reduced to the Schema object the Gemini API takes: an OpenAPI 3.0 subset with
upper-case types, `nullable` instead of `"null"` types, `anyOf` (no `oneOf`/`allOf`),
string enums only and no references. What Gemini would refuse is left out rather than
sent to fail: `$ref`s are inlined (to a bounded depth), `allOf` merged, `const` becomes a
one-value enum, and unknown keywords (`additionalProperties`, `$schema`, `examples`...)
are dropped. Pure functions."""
from __future__ import annotations

from typing import Any

TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
         "array": "ARRAY", "object": "OBJECT"}
# The formats Gemini documents, per type; others are left out.
FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
TEXT_KEYS = ("title", "description", "pattern")
COUNT_KEYS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
BOUND_KEYS = ("minimum", "maximum")
MAX_DEPTH = 32  # references are inlined; a recursive schema stops here


def reduce(schema: Any) -> dict:
    """`schema` (a JSON Schema object) as Gemini's Schema."""
    if not isinstance(schema, dict):
        return {}
    defs = {**_mapping(schema.get("definitions")), **_mapping(schema.get("$defs"))}
    return _reduce(schema, defs, 0)


def parameters(schema: Any) -> dict | None:
    """A function's `parameters`, or None where the function takes none (Gemini refuses an
    OBJECT whose `properties` is empty)."""
    reduced = reduce(schema)
    if not reduced or (reduced.get("type") == "OBJECT" and not reduced.get("properties")):
        return None
    return reduced


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _reduce(schema: Any, defs: dict, depth: int) -> dict:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1]) if ref.startswith(("#/$defs/", "#/definitions/")) else None
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _merge(_reduce(target, defs, depth + 1), _reduce(rest, defs, depth + 1)) if rest else \
            _reduce(target, defs, depth + 1)
    out: dict = {}
    if isinstance(schema.get("allOf"), list):
        for part in schema["allOf"]:
            out = _merge(out, _reduce(part, defs, depth + 1))
    out.update(_own(schema, defs, depth))
    return out


def _own(schema: dict, defs: dict, depth: int) -> dict:
    out: dict = {}
    kinds, nullable = _types(schema.get("type"))
    if len(kinds) == 1:
        out["type"] = kinds[0]
    elif len(kinds) > 1:
        # several types: one alternative each, the rest of the schema kept on each
        rest = {k: v for k, v in schema.items() if k not in ("type", "anyOf", "oneOf")}
        out["anyOf"] = [_own({**rest, "type": kind.lower()}, defs, depth + 1) for kind in kinds]
    if nullable or schema.get("nullable") is True:
        out["nullable"] = True
    for key in TEXT_KEYS:
        if isinstance(schema.get(key), str):
            out[key] = schema[key]
    for key in COUNT_KEYS:
        if isinstance(schema.get(key), int) and not isinstance(schema.get(key), bool):
            out[key] = schema[key]
    for key in BOUND_KEYS:
        if isinstance(schema.get(key), (int, float)) and not isinstance(schema.get(key), bool):
            out[key] = schema[key]
    enum = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(enum, list) and None in enum:  # a null among the values: Gemini says nullable
        out["nullable"] = True
        enum = [v for v in enum if v is not None]
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = list(enum)
        out.setdefault("type", "STRING")
        if out["type"] == "STRING":
            out["format"] = "enum"
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in FORMATS.get(out.get("type", ""), ()) and "format" not in out:
        out["format"] = fmt
    if isinstance(schema.get("properties"), dict):
        properties = {name: _reduce(sub, defs, depth + 1) for name, sub in schema["properties"].items()
                      if isinstance(name, str)}
        if properties:
            out["properties"] = properties
            out.setdefault("type", "OBJECT")
            required = [n for n in schema.get("required") or () if isinstance(n, str) and n in properties]
            if required:
                out["required"] = required
    items = schema.get("items")
    if isinstance(items, list):  # tuple validation: Gemini has one item schema
        items = items[0] if items else None
    if isinstance(items, dict):
        out["items"] = _reduce(items, defs, depth + 1)
        out.setdefault("type", "ARRAY")
    alternatives = schema.get("anyOf") if isinstance(schema.get("anyOf"), list) else schema.get("oneOf")
    if isinstance(alternatives, list) and "anyOf" not in out:
        null = [isinstance(a, dict) and a.get("type") == "null" for a in alternatives]
        if any(null):
            out["nullable"] = True
        reduced = [r for r in (_reduce(a, defs, depth + 1) for a, n in zip(alternatives, null) if not n) if r]
        if len(reduced) == 1:
            out = _merge(out, reduced[0])
        elif reduced:
            out["anyOf"] = reduced
    return out


def _types(value: Any) -> tuple[list[str], bool]:
    names = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    kinds = [TYPES[n] for n in names if n in TYPES]
    return kinds, "null" in names


def _merge(a: dict, b: dict) -> dict:
    out = {**a, **b}
    if isinstance(a.get("properties"), dict) and isinstance(b.get("properties"), dict):
        out["properties"] = {**a["properties"], **b["properties"]}
    if a.get("required") or b.get("required"):
        out["required"] = list(dict.fromkeys([*(a.get("required") or ()), *(b.get("required") or ())]))
    return out
