"""Google's Veo through the Gemini API (`type: veo`); the channel key is a Gemini API key,
sent as `x-goog-api-key`. `--base-url` is the scheme and host (st-ai adds `/v1beta/...`)."""
from server.providers.interface import ProviderSpec
from server.providers.veo.client import VeoVideo

PROVIDER = ProviderSpec(
    type="veo",
    label="Google Veo (Gemini API video)",
    default_base_url="https://generativelanguage.googleapis.com",
    video=VeoVideo,
    key_format="API_KEY",
)
