"""Azure OpenAI (`type: azure`): OpenAI's bodies at a resource's deployment URLs with an
`api-version`, or at its v1 API; chat, images and embeddings."""
from server.providers.azure.chat import AzureChat
from server.providers.azure.embeddings import AzureEmbeddings
from server.providers.azure.images import AzureImages
from server.providers.interface import ProviderSpec

PROVIDER = ProviderSpec(
    type="azure",
    label="Azure OpenAI",
    default_base_url=None,  # each resource has its own: https://RESOURCE.openai.azure.com
    chat=AzureChat,
    images=AzureImages,
    embeddings=AzureEmbeddings,
    native_apis=frozenset({"chat"}),
)
