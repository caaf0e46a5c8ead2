"""Google's Gemini models through the Gemini API (`type: gemini`): chat and embeddings.
The channel key is a Gemini API key, sent as `x-goog-api-key`; `--base-url` is the scheme
and host (st-ai adds `/{version}/models/...`, the version from `--api-version`, v1beta
when none is set)."""
from server.providers.gemini.chat import GeminiChat
from server.providers.gemini.embeddings import GeminiEmbeddings
from server.providers.interface import ProviderSpec

PROVIDER = ProviderSpec(
    type="gemini",
    label="Google Gemini (Gemini API)",
    default_base_url="https://generativelanguage.googleapis.com",
    chat=GeminiChat,
    embeddings=GeminiEmbeddings,
    key_format="API_KEY",
)
