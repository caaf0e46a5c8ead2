"""Dict <-> protobuf conversion for OpenAI-shaped JSON (see protos/st_ai/v1/chat.proto)."""
from server.codec.json_proto import Codec, codec_for

__all__ = ["Codec", "codec_for"]
