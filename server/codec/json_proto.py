"""Convert OpenAI-shaped JSON objects (already parsed into dicts) to and from protobuf
messages, without `json_format`: faster, and faithful where json_format is not
(int64 stays a number, 0 and false survive, nulls and unknown keys ride along in
`extra_json`).

The mapping rules are the ones written at the top of protos/st_ai/v1/chat.proto.
A codec is built once per message type from its descriptor and cached.

`strict` codecs check requests: a value of the wrong JSON type is a 400 naming the
field. Lenient codecs read providers' answers: a value that does not fit its typed
field is kept, as is, in `extra_json`.
"""
from __future__ import annotations

from functools import cache
import base64
import binascii
import re
from typing import Any, Callable

import orjson
from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from server.errors import GatewayError, invalid_request

EXTRA = "extra_json"
# A JSON level in a Struct costs up to three protobuf message levels (Struct, map entry,
# Value) and protobuf parsers refuse messages nested over 100 deep: a deeper JSON Schema
# would pass here, then fail to parse on the gRPC server (a 500 instead of a 400).
MAX_STRUCT_DEPTH = 30
# Unknown keys travel as JSON text, so only JSON's limit applies (orjson's is 255, counted
# from the document's root, typed levels included).
MAX_EXTRA_DEPTH = 64
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class _Mismatch(Exception):
    """A JSON value that does not fit its field; `path` names the field."""

    def __init__(self, path: str, expected: str, value: Any) -> None:
        self.path, self.expected, self.value = path, expected, value

    def to_error(self) -> GatewayError:
        return invalid_request(
            f"Invalid type for '{self.path}': expected {self.expected}, but got {_json_type(self.value)}.",
            param=self.path, code="invalid_type")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number" if not isinstance(value, int) or abs(value) < 2**63 else "a number out of range"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# -- scalar checks: each returns the value to assign or raises _Mismatch ------------

def _check_str(value: Any, path: str) -> str:
    if type(value) is str:
        return value
    raise _Mismatch(path, "a string", value)


def _check_bool(value: Any, path: str) -> bool:
    if type(value) is bool:
        return value
    raise _Mismatch(path, "a boolean", value)


def _int_check(bounds: tuple[int, int], label: str) -> Callable[[Any, str], int]:
    low, high = bounds

    def check(value: Any, path: str) -> int:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is int and low <= value <= high:
            return value
        raise _Mismatch(path, label, value)
    return check


def _check_bytes(value: Any, path: str) -> bytes:
    # bytes arrive as such from a multipart upload, as base64 text from JSON
    if type(value) is bytes:
        return value
    if type(value) is str:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _Mismatch(path, "base64 text", value) from None
    raise _Mismatch(path, "base64 text", value)


def _check_double(value: Any, path: str) -> float:
    if type(value) in (int, float):
        return float(value)
    raise _Mismatch(path, "a number", value)


_SCALAR_CHECKS: dict[int, Callable[[Any, str], Any]] = {
    FieldDescriptor.TYPE_STRING: _check_str,
    FieldDescriptor.TYPE_BOOL: _check_bool,
    FieldDescriptor.TYPE_INT32: _int_check(_INT32, "an integer"),
    FieldDescriptor.TYPE_SINT32: _int_check(_INT32, "an integer"),
    FieldDescriptor.TYPE_INT64: _int_check(_INT64, "an integer"),
    FieldDescriptor.TYPE_SINT64: _int_check(_INT64, "an integer"),
    FieldDescriptor.TYPE_DOUBLE: _check_double,
    FieldDescriptor.TYPE_FLOAT: _check_double,
    FieldDescriptor.TYPE_BYTES: _check_bytes,
}


# -- google.protobuf.Struct / Value: arbitrary JSON (JSON Schemas, ...) ---------------

def _depth_ok(value: Any, depth: int = 0, limit: int = MAX_STRUCT_DEPTH) -> bool:
    if depth > limit:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1, limit) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1, limit) for v in value)
    return True


def _from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _from_struct(value.struct_value)
    if kind == "list_value":
        return [_from_value(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        # JSON has one number type; give back 3, not 3.0, for what was written 3.
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _from_struct(struct: struct_pb2.Struct) -> dict:
    return {key: _from_value(v) for key, v in struct.fields.items()}


# -- the per-message codec -------------------------------------------------------------

Setter = Callable[[Message, Any, str], None]
Getter = Callable[[Any], Any]


class Codec:
    """Dict <-> message for one message type. Use `codec_for(cls, strict)`."""

    def __init__(self, descriptor: Descriptor, strict: bool) -> None:
        self.descriptor = descriptor
        self.strict = strict
        self.message_class: type[Message] | None = None  # set by codec_for
        self._setters: dict[str, Setter] = {}
        self._getters: dict[str, tuple[str, Getter]] = {}  # field name -> (json key, convert)
        self._list_keys: set[str] = set()  # JSON keys whose value may be an array
        self._has_extra = EXTRA in descriptor.fields_by_name
        self._as_is: bool | None = None  # to_json may skip the message (computed on first use)

    def build(self) -> "Codec":
        oneof_members: dict[str, list[FieldDescriptor]] = {}
        for field in self.descriptor.fields:
            if field.name == EXTRA:
                continue
            oneof = field.containing_oneof
            if oneof is not None and not _is_synthetic(oneof):
                oneof_members.setdefault(oneof.name, []).append(field)
                self._getters[field.name] = (oneof.name, self._getter(field))
                if field.message_type is not None and _is_list_wrapper(field.message_type):
                    self._list_keys.add(oneof.name)
            else:
                self._setters[field.name] = self._setter(field)
                self._getters[field.name] = (field.name, self._getter(field))
                if _is_repeated(field):
                    self._list_keys.add(field.name)
        for key, members in oneof_members.items():
            self._setters[key] = self._oneof_setter(key, members)
        return self

    # dict -> message ------------------------------------------------------------

    def to_message(self, data: dict, path: str = "") -> Message:
        """Build a message from a JSON object. Strict codecs raise GatewayError (400)."""
        message = self.message_class()
        try:
            self._fill(message, data, path)
        except _Mismatch as mismatch:
            raise mismatch.to_error() from None
        return message

    def _fill(self, message: Message, data: dict, path: str) -> None:
        extras: dict | None = None
        setters = self._setters
        for key, value in data.items():
            setter = setters.get(key)
            # nulls and empty arrays have no typed form that survives a round trip
            if setter is None or value is None or (type(value) is list and not value):
                if self.strict and setter is not None and value == [] and key not in self._list_keys:
                    # an array where none fits: the setter raises the type error
                    setter(message, value, f"{path}.{key}" if path else key)
                if extras is None:
                    extras = {}
                extras[key] = value
                continue
            field_path = f"{path}.{key}" if path else key
            if self.strict:
                setter(message, value, field_path)
                continue
            try:
                setter(message, value, field_path)
            except _Mismatch:
                message.ClearField(_field_for_key(message, key))
                if extras is None:
                    extras = {}
                extras[key] = value
        if extras:
            if not self._has_extra:
                if self.strict:
                    key = next(iter(extras))
                    raise _Mismatch(f"{path}.{key}" if path else key, "no such field", extras[key])
                return
            # Checked here, not left to orjson: its limit (255) counts from the document's
            # root, so extras just under it would be stored and fail to serialize later.
            if not _depth_ok(extras, 0, MAX_EXTRA_DEPTH):
                raise invalid_request("The request nests JSON too deeply.", param=path or None)
            try:
                setattr(message, EXTRA, orjson.dumps(extras).decode())
            except orjson.JSONEncodeError:
                raise invalid_request("The request nests JSON too deeply.", param=path or None) from None

    def _setter(self, field: FieldDescriptor) -> Setter:
        name = field.name
        if field.message_type is not None:
            if field.message_type.full_name == "google.protobuf.Struct":
                set_one = _struct_setter(name)
            else:
                child = _child_codec(field.message_type, self.strict)

                def set_one(message: Message, value: Any, path: str) -> None:
                    if type(value) is not dict:
                        raise _Mismatch(path, "an object", value)
                    target = getattr(message, name)
                    target.SetInParent()
                    child()._fill(target, value, path)
            if _is_repeated(field):
                return _repeated_messages(name, field.message_type, self.strict)
            return set_one
        check = _SCALAR_CHECKS[field.type]
        if _is_repeated(field):
            def set_list(message: Message, value: Any, path: str) -> None:
                if type(value) is not list:
                    raise _Mismatch(path, "an array", value)
                getattr(message, name).extend([check(v, f"{path}[{i}]") for i, v in enumerate(value)])
            return set_list

        def set_scalar(message: Message, value: Any, path: str) -> None:
            setattr(message, name, check(value, path))
        return set_scalar

    def _oneof_setter(self, key: str, members: list[FieldDescriptor]) -> Setter:
        by_type: dict[type, Setter] = {}
        by_item: dict[type, Setter] = {}  # array members, by the JSON type of their items
        names: list[str] = []
        for field in members:
            if field.message_type is None:
                json_type = {FieldDescriptor.TYPE_STRING: str, FieldDescriptor.TYPE_BOOL: bool}.get(field.type, float)
                by_type[json_type] = self._setter(field)
                names.append({str: "a string", bool: "a boolean"}.get(json_type, "a number"))
            elif _is_list_wrapper(field.message_type):
                by_item.setdefault(_item_json_type(field.message_type), _list_wrapper_setter(field, self.strict))
                if list not in by_type:
                    by_type[list] = _array_setter(by_item)
                    names.append("an array")
            else:
                by_type[dict] = self._setter(field)
                names.append("an object")
        expected = " or ".join(names)

        def set_oneof(message: Message, value: Any, path: str) -> None:
            setter = by_type.get(type(value))
            if setter is None and type(value) is int and float in by_type:
                setter = by_type[float]
            if setter is None:
                raise _Mismatch(path, expected, value)
            setter(message, value, path)
        return set_oneof

    # dict -> JSON, for an answer that leaves as JSON with no message in between --------

    def to_json(self, data: dict) -> bytes:
        """`orjson.dumps(to_dict(to_message(data)))` as a JSON value (keys may come in
        another order), without building the message where the round trip cannot change
        `data`: a lenient codec of string, integer, bool and message fields keeps every
        value as it is, except a whole float in an integer field (made an integer) and
        extras nested too deep (a 400). Text that may hold either takes the round trip."""
        as_is = self._as_is
        if as_is is None:
            as_is = self._as_is = not self.strict and _values_kept(self.descriptor, set())
        if not as_is:
            return orjson.dumps(self.to_dict(self.to_message(data)))
        try:
            text = orjson.dumps(data)
        except orjson.JSONEncodeError:  # the message is what fails, as it says
            return orjson.dumps(self.to_dict(self.to_message(data)))
        if text.count(b"{") + text.count(b"[") > MAX_EXTRA_DEPTH or _may_hold_float(text):
            return orjson.dumps(self.to_dict(self.to_message(data)))
        return text

    # message -> dict ------------------------------------------------------------

    def to_dict(self, message: Message) -> dict:
        out: dict = {}
        getters = self._getters
        extra = None
        for field, value in message.ListFields():
            entry = getters.get(field.name)
            if entry is None:  # extra_json
                extra = value
                continue
            key, convert = entry
            out[key] = convert(value)
        if extra:
            # A gRPC client writes extra_json itself: bad JSON there is its error (400).
            try:
                extras = orjson.loads(extra)
            except orjson.JSONDecodeError:
                extras = None
            if not isinstance(extras, dict) or (self.strict and not _depth_ok(extras, 0, MAX_EXTRA_DEPTH)):
                raise invalid_request(
                    f"'{EXTRA}' of {self.descriptor.name} must hold a JSON object nested at most "
                    f"{MAX_EXTRA_DEPTH} levels deep.", param=EXTRA, code="invalid_value")
            if self.strict:
                # to_message only leaves a typed field's null or [] there; anything else
                # would slip a value past its type check (e.g. "temperature": "hot").
                for key, value in extras.items():
                    if key in self._setters and value is not None and value != []:
                        raise invalid_request(f"'{EXTRA}' may not set the typed field '{key}'.",
                                              param=key, code="invalid_value")
            out.update(extras)
        return out

    def _getter(self, field: FieldDescriptor) -> Getter:
        if field.message_type is None:
            if _is_repeated(field):
                return list
            return _identity
        if field.message_type.full_name == "google.protobuf.Struct":
            return _from_struct
        if _is_list_wrapper(field.message_type) and field.containing_oneof is not None:
            item = field.message_type.fields_by_name["items"]
            if item.message_type is None:
                return lambda wrapper: list(wrapper.items)
            if _is_list_wrapper(item.message_type):  # an array of arrays
                return lambda wrapper: [list(inner.items) for inner in wrapper.items]
            child = _child_codec(item.message_type, self.strict)
            return lambda wrapper: [child().to_dict(m) for m in wrapper.items]
        child = _child_codec(field.message_type, self.strict)
        if _is_repeated(field):
            return lambda values: [child().to_dict(m) for m in values]
        return lambda value: child().to_dict(value)


# A number orjson wrote as a float (1.0, 1e+16) standing as a JSON value, not inside a
# string; text in a string that looks the same only costs the round trip.
_WHOLE_FLOAT = re.compile(rb"[:,\[]-?\d+(?:\.0|(?:\.\d+)?[eE][+-]?\d+)[,\]}]")


def _may_hold_float(text: bytes) -> bool:
    # the substring tests first: the pattern alone costs several times the encoding; `find`,
    # not `in`, which on bytes first tries its operand as an integer (a third of the time)
    return ((text.find(b".0") != -1 or text.find(b"e+") != -1 or text.find(b"e-") != -1)
            and _WHOLE_FLOAT.search(text) is not None)


_KEPT_TYPES = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_INT32,
               FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64)


def _values_kept(descriptor: Descriptor, seen: set[str]) -> bool:
    """Whether a lenient round trip keeps every value of `descriptor`'s messages as it is:
    no float, bytes or Struct field anywhere (doubles turn 3 into 3.0, Structs carry
    numbers as doubles, bytes are base64 text in JSON), and every message has extras."""
    if descriptor.full_name in seen:
        return True
    seen.add(descriptor.full_name)
    if EXTRA not in descriptor.fields_by_name:
        return False
    for field in descriptor.fields:
        kind = field.message_type
        if kind is not None and field.containing_oneof is not None and _is_list_wrapper(kind):
            field = kind.fields[0]  # a oneof's array: what counts is what it holds
            kind = field.message_type
        if kind is not None:
            if kind.full_name.startswith("google.protobuf.") or not _values_kept(kind, seen):
                return False
        elif field.type not in _KEPT_TYPES:
            return False
    return True


def _identity(value: Any) -> Any:
    return value


def _is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _is_synthetic(oneof: Any) -> bool:
    # proto3 `optional` is an implementation detail oneof with one member named _<field>
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def _is_list_wrapper(descriptor: Descriptor) -> bool:
    return [f.name for f in descriptor.fields] == ["items"] and _is_repeated(descriptor.fields[0])


def _field_for_key(message: Message, key: str) -> str:
    descriptor = message.DESCRIPTOR
    if key in descriptor.oneofs_by_name:
        return message.WhichOneof(key) or descriptor.oneofs_by_name[key].fields[0].name
    return key


def _child_codec(descriptor: Descriptor, strict: bool) -> Callable[[], Codec]:
    # Resolved on first use (message types may refer to each other), then kept.
    resolved: list[Codec] = []

    def child() -> Codec:
        if not resolved:
            resolved.append(_codec(descriptor.full_name, strict))
        return resolved[0]
    return child


def _struct_setter(name: str) -> Setter:
    def set_struct(message: Message, value: Any, path: str) -> None:
        if type(value) is not dict:
            raise _Mismatch(path, "an object", value)
        if not _depth_ok(value):
            raise invalid_request(f"'{path}' nests JSON too deeply.", param=path)
        try:
            target = getattr(message, name)
            target.SetInParent()
            target.update(value)
        except (ValueError, TypeError):
            raise invalid_request(f"'{path}' holds a value that is not JSON.", param=path) from None
    return set_struct


def _item_json_type(wrapper: Descriptor) -> type:
    """The JSON type of a list wrapper's items: str, bool, float (any number), list (its
    items are list wrappers themselves) or dict."""
    item = wrapper.fields_by_name["items"]
    if item.message_type is not None:
        return list if _is_list_wrapper(item.message_type) else dict
    return {FieldDescriptor.TYPE_STRING: str, FieldDescriptor.TYPE_BOOL: bool}.get(item.type, float)


def _array_setter(by_item: dict[type, Setter]) -> Setter:
    """A oneof's array members (e.g. an array of strings, of numbers, of arrays): the
    first item's JSON type picks one; an array no member takes is checked against the
    first member, whose error names the item at fault."""
    first = next(iter(by_item.values()))

    def set_array(message: Message, value: Any, path: str) -> None:
        kind = type(value[0]) if value else None
        setter = by_item.get(float if kind is int else kind, first)
        setter(message, value, path)
    return set_array


def _repeated_messages(name: str, descriptor: Descriptor, strict: bool) -> Setter:
    if _is_list_wrapper(descriptor) and descriptor.fields[0].message_type is None:
        return _repeated_arrays(name, _SCALAR_CHECKS[descriptor.fields[0].type])
    child = _child_codec(descriptor, strict)
    is_struct = descriptor.full_name == "google.protobuf.Struct"

    def set_list(message: Message, value: Any, path: str) -> None:
        if type(value) is not list:
            raise _Mismatch(path, "an array", value)
        for i, item in enumerate(value):
            if type(item) is not dict:
                raise _Mismatch(f"{path}[{i}]", "an object", item)
        target = getattr(message, name)
        codec = child()
        for i, item in enumerate(value):
            if is_struct:
                target.add().update(item)
            else:
                codec._fill(target.add(), item, f"{path}[{i}]")
    return set_list


def _repeated_arrays(name: str, check: Callable[[Any, str], Any]) -> Setter:
    """An array of arrays of scalars, into repeated list wrappers."""
    def set_arrays(message: Message, value: Any, path: str) -> None:
        if type(value) is not list:
            raise _Mismatch(path, "an array", value)
        target = getattr(message, name)
        for i, item in enumerate(value):
            if type(item) is not list:
                raise _Mismatch(f"{path}[{i}]", "an array", item)
            target.add().items.extend([check(v, f"{path}[{i}][{j}]") for j, v in enumerate(item)])
    return set_arrays


def _list_wrapper_setter(field: FieldDescriptor, strict: bool) -> Setter:
    item = field.message_type.fields_by_name["items"]
    name = field.name
    if item.message_type is None:
        check = _SCALAR_CHECKS[item.type]
        numbers = item.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)

        def set_scalars(message: Message, value: Any, path: str) -> None:
            # an embedding holds thousands of numbers: all floats go in as they are, and
            # the item at fault is named only once one is found
            if numbers and all(type(v) is float for v in value):
                items = value
            else:
                try:
                    items = [check(v, path) for v in value]
                except _Mismatch:
                    items = [check(v, f"{path}[{i}]") for i, v in enumerate(value)]
            getattr(message, name).items.extend(items)
            if not items:  # keep the (empty) member selected
                getattr(message, name).SetInParent()
        return set_scalars
    set_items = _repeated_messages("items", item.message_type, strict)

    def set_messages(message: Message, value: Any, path: str) -> None:
        wrapper = getattr(message, name)
        wrapper.SetInParent()
        set_items(wrapper, value, path)
    return set_messages


_CLASSES: dict[str, type[Message]] = {}


@cache
def _codec(full_name: str, strict: bool) -> Codec:
    cls = _CLASSES[full_name]
    codec = Codec(cls.DESCRIPTOR, strict)
    codec.message_class = cls
    return codec.build()


def codec_for(cls: type[Message], strict: bool = False) -> Codec:
    """The codec for `cls` (and, through it, every message type it contains)."""
    _register(cls)
    return _codec(cls.DESCRIPTOR.full_name, strict)


def _register(cls: type[Message]) -> None:
    from google.protobuf import message_factory

    if cls.DESCRIPTOR.full_name in _CLASSES:
        return
    _CLASSES[cls.DESCRIPTOR.full_name] = cls
    for field in cls.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name not in _CLASSES:
            _register(message_factory.GetMessageClass(field.message_type))
