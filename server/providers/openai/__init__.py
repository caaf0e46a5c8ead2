"""OpenAI and every OpenAI-compatible service (`type: openai`)."""
from server.providers.interface import ProviderSpec
from server.providers.openai.chat import OpenAIChat
from server.providers.openai.embeddings import OpenAIEmbeddings
from server.providers.openai.images import OpenAIImages
from server.providers.openai.videos import OpenAIVideos

PROVIDER = ProviderSpec(
    type="openai",
    label="OpenAI / OpenAI-compatible",
    default_base_url="https://api.openai.com/v1",
    chat=OpenAIChat,
    images=OpenAIImages,
    video=OpenAIVideos,
    embeddings=OpenAIEmbeddings,
    key_optional=True,  # local OpenAI-compatible servers (vLLM, Ollama) often take no key
    # not "responses": most OpenAI-compatible servers lack it; --native-apis adds it
    native_apis=frozenset({"chat"}),
)
