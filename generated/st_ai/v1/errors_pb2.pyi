from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorDetail(_message.Message):
    __slots__ = ("message", "type", "code", "param", "http_status")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    message: str
    type: str
    code: str
    param: str
    http_status: int
    def __init__(self, message: _Optional[str] = ..., type: _Optional[str] = ..., code: _Optional[str] = ..., param: _Optional[str] = ..., http_status: _Optional[int] = ...) -> None: ...
