"""The asset directory: finished videos, thumbnails and st-ai-served images, written
by streaming to disk and read back in ranges. File I/O runs off the event loop."""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, TypeVar

from server.errors import GatewayError

CHUNK = 256 * 1024
T = TypeVar("T")


def is_mp4(head: bytes) -> bool:
    # ISO base media files open with a box whose type is `ftyp`
    return len(head) >= 8 and head[4:8] == b"ftyp"


class InvalidAsset(Exception):
    pass


@dataclass(frozen=True)
class StoredFile:
    path: str
    size: int


class AssetStore:
    def __init__(self, root: str) -> None:
        self.root = Path(root).resolve()
        for folder in ("videos", "images", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _unique(self, folder: str, stem: str, suffix: str) -> Path:
        # unique per writer: two processes finishing the same task never share a file
        return self.root / folder / f"{stem}-{secrets.token_hex(6)}{suffix}"

    async def save_stream(self, folder: str, stem: str, suffix: str, chunks: AsyncIterator[bytes],
                          max_bytes: int, expect_mp4: bool,
                          verify: Callable[[str], None] | None = None) -> StoredFile:
        """Stream `chunks` to a temporary file, verify it, then move it into place.
        `verify` (blocking, run in a thread) raises to refuse the finished file."""
        final = self._unique(folder, stem, suffix)
        partial = self.root / "tmp" / (final.name + ".part")
        handle = await self._io(open, partial, "wb")
        size = 0
        head = b""
        try:
            async for chunk in chunks:
                if len(head) < 8:
                    head += chunk[:8]
                size += len(chunk)
                if size > max_bytes:
                    raise InvalidAsset(f"larger than {max_bytes} bytes")
                await self._io(handle.write, chunk)
            await self._io(handle.close)
            if size == 0:
                raise InvalidAsset("empty")
            if expect_mp4 and not is_mp4(head):
                raise InvalidAsset("not an MP4 file")
            if verify is not None:
                await self._io(verify, str(partial))
            await self._io(os.replace, partial, final)
            return StoredFile(str(final), size)
        except BaseException:
            await self._io(handle.close)
            await self._io(_unlink, str(partial))
            raise

    async def save_bytes(self, folder: str, stem: str, suffix: str, data: bytes) -> StoredFile:
        path = self._unique(folder, stem, suffix)
        await self._io(path.write_bytes, data)
        return StoredFile(str(path), len(data))

    def owns(self, path: str) -> bool:
        return Path(path).resolve().is_relative_to(self.root)

    async def size(self, path: str) -> int | None:
        try:
            return (await self._io(os.stat, path)).st_size
        except OSError:
            return None

    async def read(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive, in chunks."""
        if not self.owns(path):
            raise GatewayError(404, "No such file.", "not_found")
        handle = await self._io(open, path, "rb")
        try:
            await self._io(handle.seek, start)
            left = end - start + 1
            while left > 0:
                chunk = await self._io(handle.read, min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            await self._io(handle.close)

    async def remove_stale_partials(self, age: float) -> None:
        """Delete unfinished downloads nobody has written to for `age` seconds."""
        await self._io(_remove_older, self.root / "tmp", "*.part", age)

    async def remove_old_images(self, age: float) -> None:
        """Served images are kept as long as videos are; their URLs then stop working."""
        await self._io(_remove_older, self.root / "images", "*.png", age)

    async def files(self, folder: str) -> list[tuple[str, float]]:
        """(path, last modified) of every file in `folder`."""
        return await self._io(_listing, self.root / folder)

    async def remove(self, *paths: str | None) -> None:
        for path in paths:
            if path and self.owns(path):
                await self._io(_unlink, path)


def _remove_older(folder: Path, pattern: str, age: float) -> None:
    cutoff = time.time() - age
    for path in folder.glob(pattern):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


def _listing(folder: Path) -> list[tuple[str, float]]:
    found = []
    for entry in os.scandir(folder):
        try:
            if entry.is_file(follow_symlinks=False):
                found.append((entry.path, entry.stat(follow_symlinks=False).st_mtime))
        except FileNotFoundError:
            pass
    return found


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
