"""Anthropic's Messages API (`POST /v1/messages`) in front of st-ai's chat relay: a Messages
request as a chat request, a chat completion as a Message, chat chunks as Messages stream
events, gateway errors in Anthropic's shape, and a local `count_tokens`. Pure: no HTTP, no
protobuf, no database."""
