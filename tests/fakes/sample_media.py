"""Small real media for the fake providers to serve."""
from __future__ import annotations

import functools
import os
import tempfile


@functools.cache
def sample_mp4(seed: str = "fake provider video") -> bytes:
    """A real, playable MP4 (about a second, 160x96), made once per seed."""
    from server.providers.simulator.media import write_mp4

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sample.mp4")
        write_mp4(path, seed, 1.0, 160, 96, 12)
        with open(path, "rb") as f:
            return f.read()


@functools.cache
def sample_png(seed: str = "fake provider image", width: int = 64, height: int = 64) -> bytes:
    from server.providers.simulator.media import draw_png

    return draw_png(seed, width, height)
