"""MiniMax's Hailuo video generation (`type: hailuo`): text- and image-to-video tasks on
api.minimax.io (api.minimaxi.com in China), the result fetched through MiniMax's file
API. MiniMax cannot stop a task, so this provider offers no cancel."""
from server.providers.hailuo.client import DEFAULT_BASE_URL, HailuoVideo
from server.providers.interface import ProviderSpec

PROVIDER = ProviderSpec(
    type="hailuo",
    label="MiniMax Hailuo (video)",
    default_base_url=DEFAULT_BASE_URL,
    video=HailuoVideo,
    key_format="KEY",
)
