"""Anthropic's Messages API (`type: anthropic`): Claude models behind OpenAI's chat API.
The channel key is an Anthropic API key, sent as `x-api-key`; `--api-version` sets the
`anthropic-version` header (the current version when unset). `--base-url` is the scheme
and host (st-ai adds `/v1/messages`)."""
from server.providers.anthropic.chat import AnthropicChat
from server.providers.interface import ProviderSpec

PROVIDER = ProviderSpec(
    type="anthropic",
    label="Anthropic (Claude Messages API)",
    default_base_url="https://api.anthropic.com",
    chat=AnthropicChat,
    key_format="API_KEY",
    native_apis=frozenset({"messages"}),
)
