from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseContent(_message.Message):
    __slots__ = ("type", "text", "image_url", "detail", "file_id", "refusal", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    text: str
    image_url: str
    detail: str
    file_id: str
    refusal: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., text: _Optional[str] = ..., image_url: _Optional[str] = ..., detail: _Optional[str] = ..., file_id: _Optional[str] = ..., refusal: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseContentList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ResponseContent]
    def __init__(self, items: _Optional[_Iterable[_Union[ResponseContent, _Mapping]]] = ...) -> None: ...

class ResponseItem(_message.Message):
    __slots__ = ("type", "id", "status", "role", "content_text", "content_parts", "call_id", "name", "arguments", "output_text", "output_parts", "summary", "encrypted_content", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_PARTS_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TEXT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PARTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_CONTENT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    status: str
    role: str
    content_text: str
    content_parts: ResponseContentList
    call_id: str
    name: str
    arguments: str
    output_text: str
    output_parts: ResponseContentList
    summary: _containers.RepeatedCompositeFieldContainer[ResponseContent]
    encrypted_content: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., status: _Optional[str] = ..., role: _Optional[str] = ..., content_text: _Optional[str] = ..., content_parts: _Optional[_Union[ResponseContentList, _Mapping]] = ..., call_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ..., output_text: _Optional[str] = ..., output_parts: _Optional[_Union[ResponseContentList, _Mapping]] = ..., summary: _Optional[_Iterable[_Union[ResponseContent, _Mapping]]] = ..., encrypted_content: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseItemList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ResponseItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ResponseItem, _Mapping]]] = ...) -> None: ...

class ResponseTool(_message.Message):
    __slots__ = ("type", "name", "description", "parameters", "strict", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    description: str
    parameters: _struct_pb2.Struct
    strict: bool
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., strict: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseToolChoice(_message.Message):
    __slots__ = ("type", "name", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseTextFormat(_message.Message):
    __slots__ = ("type", "name", "description", "schema", "strict", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    description: str
    schema: _struct_pb2.Struct
    strict: bool
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., strict: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseTextConfig(_message.Message):
    __slots__ = ("format", "verbosity", "extra_json")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    format: ResponseTextFormat
    verbosity: str
    extra_json: str
    def __init__(self, format: _Optional[_Union[ResponseTextFormat, _Mapping]] = ..., verbosity: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseReasoning(_message.Message):
    __slots__ = ("effort", "summary", "extra_json")
    EFFORT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    effort: str
    summary: str
    extra_json: str
    def __init__(self, effort: _Optional[str] = ..., summary: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class CreateResponseRequest(_message.Message):
    __slots__ = ("model", "input_text", "input_items", "instructions", "tools", "tool_choice_mode", "tool_choice_named", "text", "reasoning", "max_output_tokens", "metadata", "store", "previous_response_id", "stream", "temperature", "top_p", "parallel_tool_calls", "user", "include", "truncation", "safety_identifier", "prompt_cache_key", "service_tier", "extra_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TEXT_FIELD_NUMBER: _ClassVar[int]
    INPUT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_MODE_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_NAMED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    SAFETY_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    input_text: str
    input_items: ResponseItemList
    instructions: str
    tools: _containers.RepeatedCompositeFieldContainer[ResponseTool]
    tool_choice_mode: str
    tool_choice_named: ResponseToolChoice
    text: ResponseTextConfig
    reasoning: ResponseReasoning
    max_output_tokens: int
    metadata: _struct_pb2.Struct
    store: bool
    previous_response_id: str
    stream: bool
    temperature: float
    top_p: float
    parallel_tool_calls: bool
    user: str
    include: _containers.RepeatedScalarFieldContainer[str]
    truncation: str
    safety_identifier: str
    prompt_cache_key: str
    service_tier: str
    extra_json: str
    def __init__(self, model: _Optional[str] = ..., input_text: _Optional[str] = ..., input_items: _Optional[_Union[ResponseItemList, _Mapping]] = ..., instructions: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[ResponseTool, _Mapping]]] = ..., tool_choice_mode: _Optional[str] = ..., tool_choice_named: _Optional[_Union[ResponseToolChoice, _Mapping]] = ..., text: _Optional[_Union[ResponseTextConfig, _Mapping]] = ..., reasoning: _Optional[_Union[ResponseReasoning, _Mapping]] = ..., max_output_tokens: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., store: _Optional[bool] = ..., previous_response_id: _Optional[str] = ..., stream: _Optional[bool] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., parallel_tool_calls: _Optional[bool] = ..., user: _Optional[str] = ..., include: _Optional[_Iterable[str]] = ..., truncation: _Optional[str] = ..., safety_identifier: _Optional[str] = ..., prompt_cache_key: _Optional[str] = ..., service_tier: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseInputTokensDetails(_message.Message):
    __slots__ = ("cached_tokens", "cache_write_tokens", "extra_json")
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    cached_tokens: int
    cache_write_tokens: int
    extra_json: str
    def __init__(self, cached_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseOutputTokensDetails(_message.Message):
    __slots__ = ("reasoning_tokens", "extra_json")
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    reasoning_tokens: int
    extra_json: str
    def __init__(self, reasoning_tokens: _Optional[int] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseUsage(_message.Message):
    __slots__ = ("input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens", "extra_json")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_DETAILS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    input_tokens_details: ResponseInputTokensDetails
    output_tokens: int
    output_tokens_details: ResponseOutputTokensDetails
    total_tokens: int
    extra_json: str
    def __init__(self, input_tokens: _Optional[int] = ..., input_tokens_details: _Optional[_Union[ResponseInputTokensDetails, _Mapping]] = ..., output_tokens: _Optional[int] = ..., output_tokens_details: _Optional[_Union[ResponseOutputTokensDetails, _Mapping]] = ..., total_tokens: _Optional[int] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseError(_message.Message):
    __slots__ = ("code", "message", "extra_json")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    extra_json: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseIncompleteDetails(_message.Message):
    __slots__ = ("reason", "extra_json")
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    extra_json: str
    def __init__(self, reason: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "object", "created_at", "status", "error", "incomplete_details", "model", "output", "usage", "instructions", "previous_response_id", "store", "max_output_tokens", "parallel_tool_calls", "reasoning", "tool_choice_mode", "tool_choice_named", "truncation", "user", "background", "completed_at", "extra_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_MODE_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_NAMED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    object: str
    created_at: int
    status: str
    error: ResponseError
    incomplete_details: ResponseIncompleteDetails
    model: str
    output: _containers.RepeatedCompositeFieldContainer[ResponseItem]
    usage: ResponseUsage
    instructions: str
    previous_response_id: str
    store: bool
    max_output_tokens: int
    parallel_tool_calls: bool
    reasoning: ResponseReasoning
    tool_choice_mode: str
    tool_choice_named: ResponseToolChoice
    truncation: str
    user: str
    background: bool
    completed_at: int
    extra_json: str
    def __init__(self, id: _Optional[str] = ..., object: _Optional[str] = ..., created_at: _Optional[int] = ..., status: _Optional[str] = ..., error: _Optional[_Union[ResponseError, _Mapping]] = ..., incomplete_details: _Optional[_Union[ResponseIncompleteDetails, _Mapping]] = ..., model: _Optional[str] = ..., output: _Optional[_Iterable[_Union[ResponseItem, _Mapping]]] = ..., usage: _Optional[_Union[ResponseUsage, _Mapping]] = ..., instructions: _Optional[str] = ..., previous_response_id: _Optional[str] = ..., store: _Optional[bool] = ..., max_output_tokens: _Optional[int] = ..., parallel_tool_calls: _Optional[bool] = ..., reasoning: _Optional[_Union[ResponseReasoning, _Mapping]] = ..., tool_choice_mode: _Optional[str] = ..., tool_choice_named: _Optional[_Union[ResponseToolChoice, _Mapping]] = ..., truncation: _Optional[str] = ..., user: _Optional[str] = ..., background: _Optional[bool] = ..., completed_at: _Optional[int] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ResponseStreamEvent(_message.Message):
    __slots__ = ("type", "sequence_number", "response", "output_index", "item_id", "content_index", "summary_index", "item", "part", "delta", "text", "arguments", "refusal", "name", "code", "message", "param", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    sequence_number: int
    response: Response
    output_index: int
    item_id: str
    content_index: int
    summary_index: int
    item: ResponseItem
    part: ResponseContent
    delta: str
    text: str
    arguments: str
    refusal: str
    name: str
    code: str
    message: str
    param: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., sequence_number: _Optional[int] = ..., response: _Optional[_Union[Response, _Mapping]] = ..., output_index: _Optional[int] = ..., item_id: _Optional[str] = ..., content_index: _Optional[int] = ..., summary_index: _Optional[int] = ..., item: _Optional[_Union[ResponseItem, _Mapping]] = ..., part: _Optional[_Union[ResponseContent, _Mapping]] = ..., delta: _Optional[str] = ..., text: _Optional[str] = ..., arguments: _Optional[str] = ..., refusal: _Optional[str] = ..., name: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., param: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class GetResponseRequest(_message.Message):
    __slots__ = ("response_id", "include")
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    include: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, response_id: _Optional[str] = ..., include: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponseRequest(_message.Message):
    __slots__ = ("response_id",)
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    def __init__(self, response_id: _Optional[str] = ...) -> None: ...

class DeletedResponse(_message.Message):
    __slots__ = ("id", "object", "deleted")
    ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    id: str
    object: str
    deleted: bool
    def __init__(self, id: _Optional[str] = ..., object: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListInputItemsRequest(_message.Message):
    __slots__ = ("response_id", "after", "limit", "order", "include")
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    response_id: str
    after: str
    limit: int
    order: str
    include: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, response_id: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., order: _Optional[str] = ..., include: _Optional[_Iterable[str]] = ...) -> None: ...

class InputItemList(_message.Message):
    __slots__ = ("object", "data", "first_id", "last_id", "has_more", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FIRST_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[ResponseItem]
    first_id: str
    last_id: str
    has_more: bool
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[ResponseItem, _Mapping]]] = ..., first_id: _Optional[str] = ..., last_id: _Optional[str] = ..., has_more: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...
