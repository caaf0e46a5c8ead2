from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from st_ai.v1 import videos_pb2 as _videos_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Deleted(_message.Message):
    __slots__ = ("name", "deleted", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    deleted: bool
    note: str
    def __init__(self, name: _Optional[str] = ..., deleted: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("name", "key_hint", "enabled", "models", "all_models", "expires_at", "created_at", "quota", "used", "reserved", "remaining", "currency", "rpm", "tpm", "max_concurrency", "allow_ip", "webhook_url", "has_webhook_secret", "webhook_secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ALL_MODELS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    RPM_FIELD_NUMBER: _ClassVar[int]
    TPM_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_IP_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    HAS_WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    key_hint: str
    enabled: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    all_models: bool
    expires_at: int
    created_at: int
    quota: str
    used: str
    reserved: str
    remaining: str
    currency: str
    rpm: int
    tpm: int
    max_concurrency: int
    allow_ip: _containers.RepeatedScalarFieldContainer[str]
    webhook_url: str
    has_webhook_secret: bool
    webhook_secret: str
    def __init__(self, name: _Optional[str] = ..., key_hint: _Optional[str] = ..., enabled: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ..., all_models: _Optional[bool] = ..., expires_at: _Optional[int] = ..., created_at: _Optional[int] = ..., quota: _Optional[str] = ..., used: _Optional[str] = ..., reserved: _Optional[str] = ..., remaining: _Optional[str] = ..., currency: _Optional[str] = ..., rpm: _Optional[int] = ..., tpm: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., allow_ip: _Optional[_Iterable[str]] = ..., webhook_url: _Optional[str] = ..., has_webhook_secret: _Optional[bool] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class TokenWithKey(_message.Message):
    __slots__ = ("token", "key")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    token: TokenInfo
    key: str
    def __init__(self, token: _Optional[_Union[TokenInfo, _Mapping]] = ..., key: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TokenList(_message.Message):
    __slots__ = ("object", "data", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class TokenRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("name", "models", "expires_in", "quota", "rpm", "tpm", "max_concurrency", "allow_ip")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    RPM_FIELD_NUMBER: _ClassVar[int]
    TPM_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_IP_FIELD_NUMBER: _ClassVar[int]
    name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    expires_in: str
    quota: str
    rpm: int
    tpm: int
    max_concurrency: int
    allow_ip: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., expires_in: _Optional[str] = ..., quota: _Optional[str] = ..., rpm: _Optional[int] = ..., tpm: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., allow_ip: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateTokenRequest(_message.Message):
    __slots__ = ("name", "new_name", "models", "all_models", "expires_in", "never_expires", "quota", "add_quota", "rpm", "tpm", "max_concurrency", "allow_ip", "no_rpm", "no_tpm", "no_max_concurrency", "any_ip", "webhook_url", "no_webhook_url", "rotate_webhook_secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ALL_MODELS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    NEVER_EXPIRES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    ADD_QUOTA_FIELD_NUMBER: _ClassVar[int]
    RPM_FIELD_NUMBER: _ClassVar[int]
    TPM_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_IP_FIELD_NUMBER: _ClassVar[int]
    NO_RPM_FIELD_NUMBER: _ClassVar[int]
    NO_TPM_FIELD_NUMBER: _ClassVar[int]
    NO_MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    ANY_IP_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    NO_WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    ROTATE_WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    new_name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    all_models: bool
    expires_in: str
    never_expires: bool
    quota: str
    add_quota: str
    rpm: int
    tpm: int
    max_concurrency: int
    allow_ip: _containers.RepeatedScalarFieldContainer[str]
    no_rpm: bool
    no_tpm: bool
    no_max_concurrency: bool
    any_ip: bool
    webhook_url: str
    no_webhook_url: bool
    rotate_webhook_secret: bool
    def __init__(self, name: _Optional[str] = ..., new_name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., all_models: _Optional[bool] = ..., expires_in: _Optional[str] = ..., never_expires: _Optional[bool] = ..., quota: _Optional[str] = ..., add_quota: _Optional[str] = ..., rpm: _Optional[int] = ..., tpm: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., allow_ip: _Optional[_Iterable[str]] = ..., no_rpm: _Optional[bool] = ..., no_tpm: _Optional[bool] = ..., no_max_concurrency: _Optional[bool] = ..., any_ip: _Optional[bool] = ..., webhook_url: _Optional[str] = ..., no_webhook_url: _Optional[bool] = ..., rotate_webhook_secret: _Optional[bool] = ...) -> None: ...

class AddTokenQuotaRequest(_message.Message):
    __slots__ = ("name", "amount")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    amount: str
    def __init__(self, name: _Optional[str] = ..., amount: _Optional[str] = ...) -> None: ...

class ChannelInfo(_message.Message):
    __slots__ = ("name", "type", "label", "base_url", "models", "model_map", "priority", "enabled", "key_hint", "weight", "timeout_connect", "timeout_first_byte", "timeout_idle", "timeout_total", "state", "cooling_until", "failures", "last_error", "disabled_reason", "api_version", "native_apis", "native_apis_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MAP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_CONNECT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIRST_BYTE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_IDLE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COOLING_UNTIL_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    NATIVE_APIS_FIELD_NUMBER: _ClassVar[int]
    NATIVE_APIS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    label: str
    base_url: str
    models: _containers.RepeatedScalarFieldContainer[str]
    model_map: _struct_pb2.Struct
    priority: int
    enabled: bool
    key_hint: str
    weight: int
    timeout_connect: float
    timeout_first_byte: float
    timeout_idle: float
    timeout_total: float
    state: str
    cooling_until: float
    failures: int
    last_error: str
    disabled_reason: str
    api_version: str
    native_apis: _containers.RepeatedScalarFieldContainer[str]
    native_apis_default: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., label: _Optional[str] = ..., base_url: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., model_map: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[int] = ..., enabled: _Optional[bool] = ..., key_hint: _Optional[str] = ..., weight: _Optional[int] = ..., timeout_connect: _Optional[float] = ..., timeout_first_byte: _Optional[float] = ..., timeout_idle: _Optional[float] = ..., timeout_total: _Optional[float] = ..., state: _Optional[str] = ..., cooling_until: _Optional[float] = ..., failures: _Optional[int] = ..., last_error: _Optional[str] = ..., disabled_reason: _Optional[str] = ..., api_version: _Optional[str] = ..., native_apis: _Optional[_Iterable[str]] = ..., native_apis_default: _Optional[bool] = ...) -> None: ...

class ListChannelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChannelList(_message.Message):
    __slots__ = ("object", "data", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[ChannelInfo]
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[ChannelInfo, _Mapping]]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class ChannelRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateChannelRequest(_message.Message):
    __slots__ = ("name", "type", "base_url", "key", "no_key", "models", "model_map", "priority", "weight", "timeout_connect", "timeout_first_byte", "timeout_idle", "timeout_total", "api_version", "native_apis")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NO_KEY_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MAP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_CONNECT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIRST_BYTE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_IDLE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    NATIVE_APIS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    base_url: str
    key: str
    no_key: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    model_map: _struct_pb2.Struct
    priority: int
    weight: int
    timeout_connect: float
    timeout_first_byte: float
    timeout_idle: float
    timeout_total: float
    api_version: str
    native_apis: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., base_url: _Optional[str] = ..., key: _Optional[str] = ..., no_key: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ..., model_map: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ..., timeout_connect: _Optional[float] = ..., timeout_first_byte: _Optional[float] = ..., timeout_idle: _Optional[float] = ..., timeout_total: _Optional[float] = ..., api_version: _Optional[str] = ..., native_apis: _Optional[str] = ...) -> None: ...

class UpdateChannelRequest(_message.Message):
    __slots__ = ("name", "base_url", "key", "no_key", "models", "model_map", "priority", "weight", "timeout_connect", "timeout_first_byte", "timeout_idle", "timeout_total", "api_version", "native_apis")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NO_KEY_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MAP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_CONNECT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIRST_BYTE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_IDLE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    NATIVE_APIS_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_url: str
    key: str
    no_key: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    model_map: _struct_pb2.Struct
    priority: int
    weight: int
    timeout_connect: float
    timeout_first_byte: float
    timeout_idle: float
    timeout_total: float
    api_version: str
    native_apis: str
    def __init__(self, name: _Optional[str] = ..., base_url: _Optional[str] = ..., key: _Optional[str] = ..., no_key: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ..., model_map: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ..., timeout_connect: _Optional[float] = ..., timeout_first_byte: _Optional[float] = ..., timeout_idle: _Optional[float] = ..., timeout_total: _Optional[float] = ..., api_version: _Optional[str] = ..., native_apis: _Optional[str] = ...) -> None: ...

class TestChannelRequest(_message.Message):
    __slots__ = ("name", "model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ChannelTestResult(_message.Message):
    __slots__ = ("name", "model", "ok", "latency_ms", "error", "error_code", "http_status", "reenabled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    REENABLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    ok: bool
    latency_ms: int
    error: str
    error_code: str
    http_status: int
    reenabled: bool
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., ok: _Optional[bool] = ..., latency_ms: _Optional[int] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., http_status: _Optional[int] = ..., reenabled: _Optional[bool] = ...) -> None: ...

class PriceInfo(_message.Message):
    __slots__ = ("model", "currency", "input", "cached_input", "output", "cache_write", "per_image", "per_second", "per_request", "source", "source_url", "checked")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_FIELD_NUMBER: _ClassVar[int]
    PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    model: str
    currency: str
    input: str
    cached_input: str
    output: str
    cache_write: str
    per_image: _struct_pb2.Struct
    per_second: _struct_pb2.Struct
    per_request: str
    source: str
    source_url: str
    checked: str
    def __init__(self, model: _Optional[str] = ..., currency: _Optional[str] = ..., input: _Optional[str] = ..., cached_input: _Optional[str] = ..., output: _Optional[str] = ..., cache_write: _Optional[str] = ..., per_image: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., per_second: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., per_request: _Optional[str] = ..., source: _Optional[str] = ..., source_url: _Optional[str] = ..., checked: _Optional[str] = ...) -> None: ...

class ListPricesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PriceList(_message.Message):
    __slots__ = ("object", "data", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[PriceInfo]
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[PriceInfo, _Mapping]]] = ..., extra_json: _Optional[str] = ...) -> None: ...

class SetPriceRequest(_message.Message):
    __slots__ = ("model", "input", "cached_input", "output", "cache_write", "per_image", "per_second", "per_request")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_FIELD_NUMBER: _ClassVar[int]
    PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: str
    cached_input: str
    output: str
    cache_write: str
    per_image: _struct_pb2.Struct
    per_second: _struct_pb2.Struct
    per_request: str
    def __init__(self, model: _Optional[str] = ..., input: _Optional[str] = ..., cached_input: _Optional[str] = ..., output: _Optional[str] = ..., cache_write: _Optional[str] = ..., per_image: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., per_second: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., per_request: _Optional[str] = ...) -> None: ...

class PriceRef(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class VideoTask(_message.Message):
    __slots__ = ("video", "token", "channel", "deleted")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    video: _videos_pb2.Video
    token: str
    channel: str
    deleted: bool
    def __init__(self, video: _Optional[_Union[_videos_pb2.Video, _Mapping]] = ..., token: _Optional[str] = ..., channel: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListVideoTasksRequest(_message.Message):
    __slots__ = ("token", "status", "after", "limit", "include_deleted")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    token: str
    status: str
    after: str
    limit: int
    include_deleted: bool
    def __init__(self, token: _Optional[str] = ..., status: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., include_deleted: _Optional[bool] = ...) -> None: ...

class VideoTaskList(_message.Message):
    __slots__ = ("object", "data", "last_id", "has_more", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[VideoTask]
    last_id: str
    has_more: bool
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[VideoTask, _Mapping]]] = ..., last_id: _Optional[str] = ..., has_more: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...

class VideoTaskRef(_message.Message):
    __slots__ = ("video_id",)
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    def __init__(self, video_id: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "time", "actor", "operation", "target", "request_id", "summary")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    id: int
    time: float
    actor: str
    operation: str
    target: str
    request_id: str
    summary: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., time: _Optional[float] = ..., actor: _Optional[str] = ..., operation: _Optional[str] = ..., target: _Optional[str] = ..., request_id: _Optional[str] = ..., summary: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("limit", "before_id", "operation", "target")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    before_id: int
    operation: str
    target: str
    def __init__(self, limit: _Optional[int] = ..., before_id: _Optional[int] = ..., operation: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class AuditEventList(_message.Message):
    __slots__ = ("object", "data", "has_more", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    has_more: bool
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., has_more: _Optional[bool] = ..., extra_json: _Optional[str] = ...) -> None: ...

class UsageRequest(_message.Message):
    __slots__ = ("token", "model", "channel", "since", "until", "by")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    token: str
    model: str
    channel: str
    since: str
    until: str
    by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, token: _Optional[str] = ..., model: _Optional[str] = ..., channel: _Optional[str] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., by: _Optional[_Iterable[str]] = ...) -> None: ...

class UsageGroup(_message.Message):
    __slots__ = ("token", "token_id", "token_deleted", "model", "channel", "channel_id", "channel_deleted", "day", "requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "images", "video_seconds", "cost", "api", "extra_json")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DELETED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_DELETED_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    API_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_id: int
    token_deleted: bool
    model: str
    channel: str
    channel_id: int
    channel_deleted: bool
    day: str
    requests: int
    errors: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    images: int
    video_seconds: str
    cost: str
    api: str
    extra_json: str
    def __init__(self, token: _Optional[str] = ..., token_id: _Optional[int] = ..., token_deleted: _Optional[bool] = ..., model: _Optional[str] = ..., channel: _Optional[str] = ..., channel_id: _Optional[int] = ..., channel_deleted: _Optional[bool] = ..., day: _Optional[str] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., cached_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., images: _Optional[int] = ..., video_seconds: _Optional[str] = ..., cost: _Optional[str] = ..., api: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...

class UsageReport(_message.Message):
    __slots__ = ("object", "data", "currency", "extra_json")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXTRA_JSON_FIELD_NUMBER: _ClassVar[int]
    object: str
    data: _containers.RepeatedCompositeFieldContainer[UsageGroup]
    currency: str
    extra_json: str
    def __init__(self, object: _Optional[str] = ..., data: _Optional[_Iterable[_Union[UsageGroup, _Mapping]]] = ..., currency: _Optional[str] = ..., extra_json: _Optional[str] = ...) -> None: ...
