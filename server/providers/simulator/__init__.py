"""The built-in simulator (`type: simulator`): answers deterministically from the
request, with no upstream, so a fresh machine can run the whole walk-through.
Everything it returns says so in `system_fingerprint`."""
from server.providers.interface import ProviderSpec
from server.providers.simulator.chat import SimulatorChat
from server.providers.simulator.images import SimulatorImages
from server.providers.simulator.video import SimulatorVideo

PROVIDER = ProviderSpec(
    type="simulator",
    label="SIMULATOR (built-in, no upstream; answers are generated locally)",
    chat=SimulatorChat,
    images=SimulatorImages,
    video=SimulatorVideo,
    upstream=False,
)
