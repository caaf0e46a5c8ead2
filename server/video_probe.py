"""Is a downloaded file really a video? A video stream, a positive duration, at least one
decodable frame, and every packet the container announces present in the file (a
truncated download fails). Blocking (PyAV): run it off the event loop."""
from __future__ import annotations

import os
import struct

# Frames are decoded only until the first one comes out; a file whose first packets
# never yield a frame is not worth more work than this.
MAX_PACKETS_TO_FIRST_FRAME = 300


class InvalidVideo(Exception):
    """What is wrong with the file, in words a client can read."""


def probe_video(path: str) -> None:
    import av  # ~50 ms to import, and only finished videos need it

    size = os.path.getsize(path)
    try:
        container = av.open(path, "r", metadata_errors="ignore")
    except Exception:  # PyAV raises many kinds for garbage; every one means "not a video"
        raise InvalidVideo("it is not a video file that can be read") from None
    with container:
        if not container.streams.video:
            raise InvalidVideo("it has no video stream")
        stream = container.streams.video[0]
        if _duration(container, stream) <= 0:
            raise InvalidVideo("it has no duration")
        try:
            packets, framed, end = _walk(container, stream)
        except InvalidVideo:
            raise
        except Exception:
            raise InvalidVideo("its video stream cannot be decoded") from None
    if not framed:
        raise InvalidVideo("no frame of its video stream can be decoded")
    if end > size or (stream.frames and packets < stream.frames) or not _boxes_fit(path, size):
        raise InvalidVideo("it is truncated: the file ends before its last frame")


def _boxes_fit(path: str, size: int) -> bool:
    """For an ISO media file (MP4, MOV): its top-level boxes end exactly at the end of
    the file. FFmpeg hands out a cut-short last packet without complaint; this does not."""
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            f.seek(offset)
            head = f.read(16)
            if len(head) < 8:
                return False
            length, kind = struct.unpack(">I4s", head[:8])
            if offset == 0 and kind != b"ftyp":
                return True  # not an ISO media file: nothing to check here
            if length == 1:
                if len(head) < 16:
                    return False
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:
                return True  # the last box runs to the end of the file, by definition
            if length < 8:
                return False
            offset += length
        return offset == size


def _walk(container, stream) -> tuple[int, bool, int]:
    """(video packets read, whether a frame was decoded, where the last packet ends)."""
    packets, framed, end = 0, False, 0
    for packet in container.demux(stream):
        if packet.size == 0 and packet.dts is None:
            continue  # the demuxer's end-of-stream marker
        packets += 1
        if packet.pos is not None and packet.pos >= 0:
            end = max(end, packet.pos + packet.size)
        if not framed:
            if packets > MAX_PACKETS_TO_FIRST_FRAME:
                raise InvalidVideo("no frame of its video stream can be decoded")
            framed = any(True for _ in packet.decode())
    if not framed:
        framed = any(True for _ in stream.codec_context.decode(None))  # frames the decoder held back
    return packets, framed, end


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # in av.time_base units
    return 0.0
