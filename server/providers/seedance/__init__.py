"""ByteDance Seedance video (`type: seedance`): Ark's content generation tasks, on BytePlus
ModelArk (the default, international) or Volcengine Ark (`--base-url
https://ark.cn-beijing.volces.com`). The channel key is an Ark API key, sent as Bearer."""
from server.providers.interface import ProviderSpec
from server.providers.seedance.client import DEFAULT_BASE_URL, SeedanceVideo

PROVIDER = ProviderSpec(
    type="seedance",
    label="Seedance (Volcengine Ark / BytePlus ModelArk video)",
    default_base_url=DEFAULT_BASE_URL,
    video=SeedanceVideo,
    key_format="ARK_API_KEY",
)
