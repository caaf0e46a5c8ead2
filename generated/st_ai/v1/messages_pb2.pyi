from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageCacheControl(_message.Message):
    __slots__ = ("type", "ttl", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    ttl: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., ttl: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageBlockSource(_message.Message):
    __slots__ = ("type", "media_type", "data", "url", "file_id", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    media_type: str
    data: str
    url: str
    file_id: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., media_type: _Optional[str] = ..., data: _Optional[str] = ..., url: _Optional[str] = ..., file_id: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageBlock(_message.Message):
    __slots__ = ("type", "text", "source_object", "source_text", "id", "name", "tool_use_id", "content_text", "content_blocks", "content_object", "is_error", "thinking", "signature", "data", "cache_control", "title", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OBJECT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_OBJECT_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CACHE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    text: str
    source_object: MessageBlockSource
    source_text: str
    id: str
    name: str
    tool_use_id: str
    content_text: str
    content_blocks: MessageBlockList
    content_object: _struct_pb2.Struct
    is_error: bool
    thinking: str
    signature: str
    data: str
    cache_control: MessageCacheControl
    title: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., text: _Optional[str] = ..., source_object: _Optional[_Union[MessageBlockSource, _Mapping]] = ..., source_text: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., tool_use_id: _Optional[str] = ..., content_text: _Optional[str] = ..., content_blocks: _Optional[_Union[MessageBlockList, _Mapping]] = ..., content_object: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., is_error: _Optional[bool] = ..., thinking: _Optional[str] = ..., signature: _Optional[str] = ..., data: _Optional[str] = ..., cache_control: _Optional[_Union[MessageCacheControl, _Mapping]] = ..., title: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageBlockList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[MessageBlock]
    def __init__(self, items: _Optional[_Iterable[_Union[MessageBlock, _Mapping]]] = ...) -> None: ...

class MessageParam(_message.Message):
    __slots__ = ("role", "text", "blocks", "extra_json")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    blocks: MessageBlockList
    extra_json: str
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ..., blocks: _Optional[_Union[MessageBlockList, _Mapping]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageTool(_message.Message):
    __slots__ = ("type", "name", "description", "cache_control", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CACHE_CONTROL_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    description: str
    cache_control: MessageCacheControl
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., cache_control: _Optional[_Union[MessageCacheControl, _Mapping]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageToolChoice(_message.Message):
    __slots__ = ("type", "name", "disable_parallel_tool_use", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISABLE_PARALLEL_TOOL_USE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    disable_parallel_tool_use: bool
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., disable_parallel_tool_use: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageThinkingConfig(_message.Message):
    __slots__ = ("type", "budget_tokens", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    budget_tokens: int
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., budget_tokens: _Optional[int] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageMetadata(_message.Message):
    __slots__ = ("user_id", "extra_json")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    extra_json: str
    def __init__(self, user_id: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class CreateMessageRequest(_message.Message):
    __slots__ = ("model", "max_tokens", "messages", "system_text", "system_blocks", "tools", "tool_choice", "thinking", "stop_sequences", "temperature", "top_p", "top_k", "metadata", "stream", "service_tier", "extra_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_TEXT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    max_tokens: int
    messages: _containers.RepeatedCompositeFieldContainer[MessageParam]
    system_text: str
    system_blocks: MessageBlockList
    tools: _containers.RepeatedCompositeFieldContainer[MessageTool]
    tool_choice: MessageToolChoice
    thinking: MessageThinkingConfig
    stop_sequences: _containers.RepeatedScalarFieldContainer[str]
    temperature: float
    top_p: float
    top_k: int
    metadata: MessageMetadata
    stream: bool
    service_tier: str
    extra_json: str
    def __init__(self, model: _Optional[str] = ..., max_tokens: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[MessageParam, _Mapping]]] = ..., system_text: _Optional[str] = ..., system_blocks: _Optional[_Union[MessageBlockList, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[MessageTool, _Mapping]]] = ..., tool_choice: _Optional[_Union[MessageToolChoice, _Mapping]] = ..., thinking: _Optional[_Union[MessageThinkingConfig, _Mapping]] = ..., stop_sequences: _Optional[_Iterable[str]] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., metadata: _Optional[_Union[MessageMetadata, _Mapping]] = ..., stream: _Optional[bool] = ..., service_tier: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageUsage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "service_tier", "extra_json")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_TIER_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    service_tier: str
    extra_json: str
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_creation_input_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ..., service_tier: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class AssistantMessage(_message.Message):
    __slots__ = ("id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage", "extra_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    role: str
    model: str
    content: _containers.RepeatedCompositeFieldContainer[MessageBlock]
    stop_reason: str
    stop_sequence: str
    usage: MessageUsage
    extra_json: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., role: _Optional[str] = ..., model: _Optional[str] = ..., content: _Optional[_Iterable[_Union[MessageBlock, _Mapping]]] = ..., stop_reason: _Optional[str] = ..., stop_sequence: _Optional[str] = ..., usage: _Optional[_Union[MessageUsage, _Mapping]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageDelta(_message.Message):
    __slots__ = ("type", "text", "partial_json", "thinking", "signature", "stop_reason", "stop_sequence", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_JSON_FIELD_NUMBER: _ClassVar[int]
    THINKING_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    text: str
    partial_json: str
    thinking: str
    signature: str
    stop_reason: str
    stop_sequence: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., text: _Optional[str] = ..., partial_json: _Optional[str] = ..., thinking: _Optional[str] = ..., signature: _Optional[str] = ..., stop_reason: _Optional[str] = ..., stop_sequence: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageError(_message.Message):
    __slots__ = ("type", "message", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageStreamEvent(_message.Message):
    __slots__ = ("type", "message", "index", "content_block", "delta", "usage", "error", "extra_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BLOCK_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: AssistantMessage
    index: int
    content_block: MessageBlock
    delta: MessageDelta
    usage: MessageUsage
    error: MessageError
    extra_json: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[_Union[AssistantMessage, _Mapping]] = ..., index: _Optional[int] = ..., content_block: _Optional[_Union[MessageBlock, _Mapping]] = ..., delta: _Optional[_Union[MessageDelta, _Mapping]] = ..., usage: _Optional[_Union[MessageUsage, _Mapping]] = ..., error: _Optional[_Union[MessageError, _Mapping]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class MessageTokenCount(_message.Message):
    __slots__ = ("input_tokens", "extra_json")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    extra_json: str
    def __init__(self, input_tokens: _Optional[int] = ..., extra_json: _Optional[str] = ...) -> None: ...
