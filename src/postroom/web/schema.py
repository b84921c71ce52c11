"""The subset of JSON Schema the API declares its bodies in, and a checker for it.

The same dictionaries go into ``/api/openapi.json`` (OpenAPI 3.0 schema objects) and
check each request body before a handler sees it, so the document cannot drift from
what the server accepts. Supported: ``type`` (object, array, string, integer, number,
boolean, and a list of them with ``nullable``), ``properties``, ``required``,
``additionalProperties: false``, ``items``, ``enum``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``maxItems``, ``pattern``, ``format: email`` (checked loosely:
services check addresses properly).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import Invalid

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                       "integer": (int,), "number": (int, float), "boolean": (bool,)}


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[kind])


def check(schema: dict[str, Any], value: Any, where: str = "") -> None:
    """Raise :class:`Invalid` naming the first field that does not fit ``schema``."""
    field = where or None
    label = where or "the body"
    if value is None:
        if schema.get("nullable"):
            return
        raise Invalid(f"{label} must not be null", field)
    kind = schema.get("type")
    if kind is not None and not _is(value, kind):
        raise Invalid(f"{label} must be of type {kind}", field)
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(f"{label} must be one of {', '.join(map(str, schema['enum']))}", field)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise Invalid(f"{label} is too short", field)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise Invalid(f"{label} is longer than {schema['maxLength']} characters", field)
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise Invalid(f"{label} is not in the expected form", field)
        if schema.get("format") == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
            raise Invalid(f"{label} is not an e-mail address", field)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise Invalid(f"{label} must be at least {schema['minimum']}", field)
        if "maximum" in schema and value > schema["maximum"]:
            raise Invalid(f"{label} must be at most {schema['maximum']}", field)
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Invalid(f"{label} has more than {schema['maxItems']} items", field)
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                check(items, item, f"{where}[{i}]" if where else f"[{i}]")
    elif isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise Invalid(f"{name} is required", _join(where, name))
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in props:
                    raise Invalid(f"{name} is not a known field", _join(where, str(name)))
        for name, sub in props.items():
            if name in value:
                check(sub, value[name], _join(where, name))


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
