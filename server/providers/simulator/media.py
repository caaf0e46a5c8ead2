"""Real media for the simulator: PNG images and MP4 videos drawn from a prompt.

Pure, synchronous functions (no asyncio, no HTTP); callers run the slow ones
(write_mp4, thumbnail_from_mp4, probe_mp4) in a worker thread.

* Images are drawn with a tiny scanline rasteriser over a ``bytearray`` (flat
  shapes and a diagonal gradient are all row-slice assignments, so pure
  Python is fast enough) and written as PNG with zlib + struct: no imaging
  library is needed for them.
* Video uses PyAV (``av`` on PyPI), whose wheels bundle FFmpeg with libx264
  and libwebp: frames are drawn one at a time with the same rasteriser,
  encoded to H.264 (MPEG-4 Part 2 if the FFmpeg build has no H.264 encoder)
  and muxed straight to the file, so only one frame is ever held in memory.
  PyAV also decodes any provider's MP4 for thumbnails and probing.

Everything drawn is a function of the prompt only, so the same prompt always
gives the same picture (and, with libx264, the same bytes).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import zlib
from fractions import Fraction
from typing import Callable

__all__ = [
    "MediaError",
    "draw_png",
    "even_size",
    "is_mp4",
    "pick_video_codec",
    "probe_mp4",
    "thumbnail_from_mp4",
    "write_mp4",
]

MAX_SIDE = 8192  # per image / video side, in pixels
MAX_PIXELS = 4096 * 4096  # per image / frame (the canvas is 3 bytes a pixel)
MAX_FRAMES = 100_000


class MediaError(ValueError):
    """Bad arguments, or a file that is not a decodable video."""


# ---------------------------------------------------------------- signatures


def is_mp4(first_bytes: bytes) -> bool:
    """True when the bytes begin like an ISO-BMFF/MP4 file (an ``ftyp`` box first)."""
    return len(first_bytes) >= 8 and bytes(first_bytes[4:8]) == b"ftyp"


# ---------------------------------------------------------------- rasteriser

Rgb = tuple[int, int, int]


class _Canvas:
    """RGB24 pixels in a bytearray, rows ``stride`` bytes apart (stride >= 3*width)."""

    __slots__ = ("width", "height", "stride", "buf", "_rows")

    def __init__(self, width: int, height: int, stride: int | None = None, buf: bytearray | None = None):
        self.width = width
        self.height = height
        self.stride = stride or width * 3
        self.buf = buf if buf is not None else bytearray(self.stride * height)
        self._rows: dict[Rgb, bytes] = {}

    def _row(self, rgb: Rgb) -> bytes:
        row = self._rows.get(rgb)
        if row is None:
            row = self._rows[rgb] = bytes(rgb) * self.width
        return row

    def span(self, y: int, x0: int, x1: int, rgb: Rgb) -> None:
        """Fill pixels [x0, x1) of row y (clipped)."""
        if y < 0 or y >= self.height:
            return
        if x0 < 0:
            x0 = 0
        if x1 > self.width:
            x1 = self.width
        if x1 <= x0:
            return
        off = y * self.stride
        self.buf[off + 3 * x0 : off + 3 * x1] = self._row(rgb)[: 3 * (x1 - x0)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, rgb: Rgb) -> None:
        x0, x1 = max(0, x0), min(self.width, x1)
        y0, y1 = max(0, y0), min(self.height, y1)
        if x1 <= x0 or y1 <= y0:
            return
        seg = self._row(rgb)[: 3 * (x1 - x0)]
        buf, stride, a, b = self.buf, self.stride, 3 * x0, 3 * x1
        for off in range(y0 * stride, y1 * stride, stride):
            buf[off + a : off + b] = seg

    def circle(self, cx: int, cy: int, r: int, rgb: Rgb) -> None:
        for dy in range(max(-r, -cy), min(r, self.height - 1 - cy) + 1):
            dx = math.isqrt(r * r - dy * dy)
            self.span(cy + dy, cx - dx, cx + dx + 1, rgb)

    def ring(self, cx: int, cy: int, r: int, thick: int, rgb: Rgb) -> None:
        ri = max(0, r - thick)
        for dy in range(max(-r, -cy), min(r, self.height - 1 - cy) + 1):
            dx = math.isqrt(r * r - dy * dy)
            if abs(dy) >= ri:
                self.span(cy + dy, cx - dx, cx + dx + 1, rgb)
            else:
                di = math.isqrt(ri * ri - dy * dy)
                self.span(cy + dy, cx - dx, cx - di, rgb)
                self.span(cy + dy, cx + di + 1, cx + dx + 1, rgb)

    def triangle(self, pts: list[tuple[float, float]], rgb: Rgb) -> None:
        ys = [p[1] for p in pts]
        y0 = max(0, math.ceil(min(ys) - 0.5))
        y1 = min(self.height - 1, math.floor(max(ys) - 0.5))
        edges = [(pts[i], pts[(i + 1) % 3]) for i in range(3)]
        for y in range(y0, y1 + 1):
            yc = y + 0.5
            xs = []
            for (ax, ay), (bx, by) in edges:
                if (ay <= yc < by) or (by <= yc < ay):
                    xs.append(ax + (yc - ay) * (bx - ax) / (by - ay))
            if len(xs) >= 2:
                self.span(y, math.ceil(min(xs) - 0.5), math.floor(max(xs) - 0.5) + 1, rgb)

    def diagonal_gradient(self, c0: Rgb, c1: Rgb, c2: Rgb) -> None:
        """Three-stop gradient from the top-left to the bottom-right corner."""
        n = self.width + self.height
        base = bytearray(3 * n)
        half = (n - 1) / 2 or 1
        for i in range(n):
            a, b, t = (c0, c1, i / half) if i <= half else (c1, c2, (i - half) / half)
            base[3 * i : 3 * i + 3] = bytes(round(a[k] + (b[k] - a[k]) * t) for k in range(3))
        w3, stride, buf = 3 * self.width, self.stride, self.buf
        for y in range(self.height):
            buf[y * stride : y * stride + w3] = base[3 * y : 3 * y + w3]

    def text(self, x: int, y: int, s: str, scale: int, rgb: Rgb) -> None:
        for ch in s:
            cols = _FONT.get(ch.upper(), _FONT["?"])
            for cx, bits in enumerate(cols):
                if not bits:
                    continue
                px = x + cx * scale
                row = 0
                while bits:
                    if bits & 1:
                        # merge the vertical run of lit pixels into one rect
                        run = 0
                        while bits & 1:
                            run += 1
                            bits >>= 1
                        self.rect(px, y + row * scale, px + scale, y + (row + run) * scale, rgb)
                        row += run
                    else:
                        bits >>= 1
                        row += 1
            x += 6 * scale


# 5x7 glyphs, column-major: one byte per column, bit 0 = top row.
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0),
    "A": (0x7C, 0x12, 0x11, 0x12, 0x7C), "B": (0x7F, 0x49, 0x49, 0x49, 0x36),
    "C": (0x3E, 0x41, 0x41, 0x41, 0x22), "D": (0x7F, 0x41, 0x41, 0x22, 0x1C),
    "E": (0x7F, 0x49, 0x49, 0x49, 0x41), "F": (0x7F, 0x09, 0x09, 0x09, 0x01),
    "G": (0x3E, 0x41, 0x49, 0x49, 0x7A), "H": (0x7F, 0x08, 0x08, 0x08, 0x7F),
    "I": (0x00, 0x41, 0x7F, 0x41, 0x00), "J": (0x20, 0x40, 0x41, 0x3F, 0x01),
    "K": (0x7F, 0x08, 0x14, 0x22, 0x41), "L": (0x7F, 0x40, 0x40, 0x40, 0x40),
    "M": (0x7F, 0x02, 0x0C, 0x02, 0x7F), "N": (0x7F, 0x04, 0x08, 0x10, 0x7F),
    "O": (0x3E, 0x41, 0x41, 0x41, 0x3E), "P": (0x7F, 0x09, 0x09, 0x09, 0x06),
    "Q": (0x3E, 0x41, 0x51, 0x21, 0x5E), "R": (0x7F, 0x09, 0x19, 0x29, 0x46),
    "S": (0x26, 0x49, 0x49, 0x49, 0x32), "T": (0x01, 0x01, 0x7F, 0x01, 0x01),
    "U": (0x3F, 0x40, 0x40, 0x40, 0x3F), "V": (0x1F, 0x20, 0x40, 0x20, 0x1F),
    "W": (0x3F, 0x40, 0x38, 0x40, 0x3F), "X": (0x63, 0x14, 0x08, 0x14, 0x63),
    "Y": (0x07, 0x08, 0x70, 0x08, 0x07), "Z": (0x61, 0x51, 0x49, 0x45, 0x43),
    "0": (0x3E, 0x51, 0x49, 0x45, 0x3E), "1": (0x00, 0x42, 0x7F, 0x40, 0x00),
    "2": (0x42, 0x61, 0x51, 0x49, 0x46), "3": (0x21, 0x41, 0x45, 0x4B, 0x31),
    "4": (0x18, 0x14, 0x12, 0x7F, 0x10), "5": (0x27, 0x45, 0x45, 0x45, 0x39),
    "6": (0x3C, 0x4A, 0x49, 0x49, 0x30), "7": (0x01, 0x71, 0x09, 0x05, 0x03),
    "8": (0x36, 0x49, 0x49, 0x49, 0x36), "9": (0x06, 0x49, 0x49, 0x29, 0x1E),
    "!": (0x00, 0x00, 0x5F, 0x00, 0x00), "?": (0x02, 0x01, 0x51, 0x09, 0x06),
    ".": (0x00, 0x60, 0x60, 0x00, 0x00), ",": (0x00, 0x50, 0x30, 0x00, 0x00),
    ":": (0x00, 0x36, 0x36, 0x00, 0x00), ";": (0x00, 0x56, 0x36, 0x00, 0x00),
    "-": (0x08, 0x08, 0x08, 0x08, 0x08), "+": (0x08, 0x08, 0x3E, 0x08, 0x08),
    "'": (0x00, 0x00, 0x07, 0x00, 0x00), '"': (0x00, 0x07, 0x00, 0x07, 0x00),
    "/": (0x20, 0x10, 0x08, 0x04, 0x02), "(": (0x00, 0x1C, 0x22, 0x41, 0x00),
    ")": (0x00, 0x41, 0x22, 0x1C, 0x00), "=": (0x14, 0x14, 0x14, 0x14, 0x14),
    "&": (0x36, 0x49, 0x55, 0x22, 0x50), "#": (0x14, 0x7F, 0x14, 0x7F, 0x14),
    "%": (0x23, 0x13, 0x08, 0x64, 0x62), "*": (0x14, 0x08, 0x3E, 0x08, 0x14),
    "_": (0x40, 0x40, 0x40, 0x40, 0x40), "@": (0x32, 0x49, 0x79, 0x41, 0x3E),
}


def _wrap(prompt: str, per_line: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    # Words are taken one at a time and only until the caption is full: the cost is
    # that of the caption, however long the prompt.
    for match in re.finditer(r"\S+", prompt):
        if len(lines) > max_lines:
            break
        w = match.group(0)
        while len(w) > per_line and len(lines) <= max_lines:  # hard-break very long words
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(w[:per_line])
            w = w[per_line:]
        if not cur:
            cur = w
        elif len(cur) + 1 + len(w) <= per_line:
            cur += " " + w
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        lines[-1] = (last[: per_line - 3] if len(last) > per_line - 3 else last) + "..."
    return lines


# ---------------------------------------------------------------- the scene


class _Scene:
    """Everything derived from the prompt: palette, shapes, caption."""

    def __init__(self, prompt: str):
        self.prompt = prompt
        self._seed = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()
        self._n = 0
        hue = self._u()
        self.bg = tuple(_hsv(hue + d, 0.55, v) for d, v in ((0.0, 0.35), (0.12, 0.55), (0.25, 0.3)))
        self.shapes = []
        for _ in range(3 + int(self._u() * 4)):  # 3..6 shapes
            kind = ("rect", "circle", "triangle", "ring")[int(self._u() * 4)]
            colour = _hsv(hue + 0.3 + self._u() * 0.6, 0.5 + self._u() * 0.5, 0.7 + self._u() * 0.3)
            # position (fractions of the frame), size (fraction of the short side),
            # velocity (frame widths/heights per second) and a phase for the video
            self.shapes.append(
                (kind, colour, self._u(), self._u(), 0.08 + self._u() * 0.22,
                 (self._u() - 0.5) * 0.6, (self._u() - 0.5) * 0.6, self._u())
            )

    def _u(self) -> float:
        """Deterministic uniform [0, 1) stream from the prompt hash."""
        h = hashlib.sha256(self._seed + self._n.to_bytes(4, "big")).digest()
        self._n += 1
        return int.from_bytes(h[:8], "big") / 2.0**64

    def background(self, c: _Canvas) -> None:
        c.diagonal_gradient(*self.bg)

    def caption(self, c: _Canvas) -> int:
        """The prompt over a dark band at the bottom; returns the band's top row
        (c.height when the canvas is too small to caption legibly)."""
        if not self.prompt.strip():
            return c.height
        scale = max(1, min(c.width, c.height * 2) // 256)
        per_line = (c.width - 4 * scale) // (6 * scale)
        if per_line < 4:
            return c.height
        lines = _wrap(self.prompt, per_line, 3)
        line_h = 9 * scale
        top = c.height - len(lines) * line_h - 3 * scale
        if top < c.height // 2:
            return c.height
        band = top - 2 * scale
        c.rect(0, band, c.width, c.height, (16, 16, 24))
        for i, line in enumerate(lines):
            c.text(2 * scale, top + i * line_h, line, scale, (240, 240, 240))
        return band

    def draw_shapes(self, c: _Canvas, t: float | None) -> None:
        """Shapes at time t seconds (bouncing around), or at rest when t is None."""
        short = min(c.width, c.height)
        for kind, colour, fx, fy, fs, vx, vy, phase in self.shapes:
            size = max(2, int(fs * short))
            if t is not None:
                fx, fy = _bounce(fx + vx * t), _bounce(fy + vy * t)
            cx = int(fx * (c.width - size)) + size // 2
            cy = int(fy * (c.height - size)) + size // 2
            r = size // 2
            if kind == "rect":
                c.rect(cx - r, cy - r, cx + r, cy + r, colour)
            elif kind == "circle":
                c.circle(cx, cy, r, colour)
            elif kind == "ring":
                c.ring(cx, cy, r, max(1, r // 4), colour)
            else:
                a = phase * 2 * math.pi + (t or 0.0) * 1.5
                pts = [(cx + r * math.cos(a + k * 2.0944), cy + r * math.sin(a + k * 2.0944)) for k in range(3)]
                c.triangle(pts, colour)


def _bounce(x: float) -> float:
    """Triangle wave folding any real into [0, 1]."""
    x = x % 2.0
    return 2.0 - x if x > 1.0 else x


def _hsv(h: float, s: float, v: float) -> Rgb:
    h = (h % 1.0) * 6.0
    i = int(h)
    f = h - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i % 6]
    return (round(r * 255), round(g * 255), round(b * 255))


# ---------------------------------------------------------------- PNG


def _check_side(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MediaError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= MAX_SIDE:
        raise MediaError(f"{name} must be between {minimum} and {MAX_SIDE}, got {value}")
    return value


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _check_area(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise MediaError(f"{width}x{height} is more than {MAX_PIXELS} pixels")


def draw_png(prompt: str, width: int, height: int) -> bytes:
    """A deterministic RGB PNG of width x height drawn from the prompt: a
    diagonal gradient, a few flat shapes and the prompt as a caption (when
    the image is large enough for it to be legible)."""
    _check_side("width", width)
    _check_side("height", height)
    _check_area(width, height)
    scene = _Scene(prompt)
    c = _Canvas(width, height)
    scene.background(c)
    scene.draw_shapes(c, None)
    scene.caption(c)
    mv = memoryview(c.buf)
    rs = 3 * width
    # filter type 0 on every row: flat shapes compress well and no per-byte Python work
    raw = b"".join(b"\x00" + mv[y * rs : (y + 1) * rs] for y in range(height))
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
        _png_chunk(b"IDAT", zlib.compress(raw, 6)),
        _png_chunk(b"IEND", b""),
    ))


# ---------------------------------------------------------------- video (PyAV)

_VIDEO_CODECS = ("libx264", "h264", "mpeg4")  # first one this FFmpeg build can encode


def _av():
    import av  # imported lazily: ~50 ms, and only the video paths need it

    return av


def pick_video_codec() -> str:
    """The encoder write_mp4 uses: libx264 (H.264) when the bundled FFmpeg has it,
    else MPEG-4 Part 2, which FFmpeg always has."""
    av = _av()
    for name in _VIDEO_CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:
            continue
        return name
    raise MediaError("this FFmpeg build has neither an H.264 nor an MPEG-4 encoder")


def even_size(width: int, height: int) -> tuple[int, int]:
    """The frame size write_mp4 really uses: yuv420p needs even sides, so odd
    ones are rounded down (never below 2)."""
    _check_side("width", width, 2)
    _check_side("height", height, 2)
    _check_area(width, height)
    return width & ~1, height & ~1


def write_mp4(
    path: str,
    prompt: str,
    seconds: float,
    width: int,
    height: int,
    fps: int,
    progress: Callable[[float], None] | None = None,
    *,
    codec: str | None = None,
) -> int:
    """Encode a video drawn from the prompt to an MP4 file at path; return its size in bytes.

    The frame size is even_size(width, height); the frame count is
    max(1, round(seconds * fps)), so the duration is frames / fps. Frames are
    drawn and encoded one at a time and the muxer writes straight to path
    (moov moved to the front, "faststart", for progressive playback), so
    memory stays at about one frame whatever the length. progress, if given,
    is called with increasing fractions as frames are encoded (at most about
    100 calls) and with exactly 1.0 once the file is complete; an exception
    raised by progress aborts the encoding (a way to cancel). codec overrides
    pick_video_codec() (e.g. "mpeg4"). On any error the partial file is removed.
    """
    w, h = even_size(width, height)
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 240:
        raise MediaError(f"fps must be an integer between 1 and 240, got {fps!r}")
    if not isinstance(seconds, (int, float)) or not seconds > 0 or math.isinf(seconds):
        raise MediaError(f"seconds must be a positive number, got {seconds!r}")
    frames = max(1, round(seconds * fps))
    if frames > MAX_FRAMES:
        raise MediaError(f"{frames} frames is more than the {MAX_FRAMES} allowed")
    av = _av()
    codec = codec or pick_video_codec()

    scene = _Scene(prompt)
    probe_frame = av.VideoFrame(w, h, "rgb24")
    stride = probe_frame.planes[0].line_size  # FFmpeg pads rows; draw with its stride
    canvas = _Canvas(w, h, stride)
    scene.background(canvas)
    band_top = scene.caption(canvas)
    background = bytes(canvas.buf)
    band_off = band_top * stride
    bar_h = max(2, h // 90)
    bar_top = (band_top if band_top < h else h) - bar_h
    tb = Fraction(1, fps)

    try:
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.time_base = tb
            stream.codec_context.gop_size = max(1, 2 * fps)  # a keyframe every 2 s: cheap seeking
            if codec in ("libx264", "h264"):
                # ultrafast: ~6 ms a 720p frame on two cores, and it yields
                # Constrained Baseline yuv420p, which every browser and player decodes
                stream.options = {"preset": "ultrafast", "crf": "23"}
            else:
                stream.codec_context.bit_rate = max(200_000, min(20_000_000, w * h * fps // 6))
            last = 0.0
            for i in range(frames):
                t = i / fps
                buf = canvas.buf
                buf[:] = background
                scene.draw_shapes(canvas, t)
                if band_top < h:
                    buf[band_off:] = background[band_off:]
                # a time bar just above the caption shows the playback position
                canvas.rect(0, bar_top, (w * (i + 1)) // frames, bar_top + bar_h, (250, 250, 250))
                frame = av.VideoFrame(w, h, "rgb24")
                frame.planes[0].update(buf)
                frame.pts = i
                frame.time_base = tb
                for packet in stream.encode(frame):
                    out.mux(packet)
                if progress is not None and i + 1 < frames:
                    frac = (i + 1) / frames
                    if frac - last >= 0.01:
                        progress(frac)
                        last = frac
            for packet in stream.encode(None):
                out.mux(packet)
    except BaseException:
        try:
            os.remove(path)
        except OSError:
            pass
        raise
    size = os.path.getsize(path)
    if progress is not None:
        progress(1.0)
    return size


def _open_video(path: str):
    av = _av()
    try:
        container = av.open(path, "r")
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"not a readable video: {e}") from e
    if not container.streams.video:
        container.close()
        raise MediaError("the file has no video stream")
    return container


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base
    rate = stream.average_rate or stream.guessed_rate
    if stream.frames and rate:
        return float(stream.frames / rate)
    return 0.0


def probe_mp4(path: str) -> dict:
    """Metadata of a video file (MP4 or anything FFmpeg reads):
    {"duration": s, "width", "height", "fps", "codec", "frames" (0 if unknown)}.
    Raises MediaError if it is not a decodable video."""
    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        cc = stream.codec_context
        return {
            "duration": round(_duration(container, stream), 6),
            "width": int(cc.width),
            "height": int(cc.height),
            "fps": round(float(rate), 6) if rate else 0.0,
            "codec": cc.name,
            "frames": int(stream.frames or 0),
        }


_THUMB_ENCODERS = (  # (codec, pixel format, content type), best first
    ("libwebp", "yuv420p", "image/webp"),
    ("png", "rgb24", "image/png"),
    ("mjpeg", "yuvj420p", "image/jpeg"),
)


def _encode_image(frame) -> tuple[bytes, str]:
    av = _av()
    for name, pix_fmt, content_type in _THUMB_ENCODERS:
        try:
            cc = av.CodecContext.create(name, "w")
        except Exception:
            continue
        cc.width, cc.height, cc.pix_fmt = frame.width, frame.height, pix_fmt
        cc.time_base = Fraction(1, 25)
        if name == "libwebp":
            cc.options = {"quality": "80"}
        img = frame.reformat(format=pix_fmt)
        img.pts = 0
        img.time_base = cc.time_base
        data = b"".join(bytes(p) for p in [*cc.encode(img), *cc.encode(None)])
        if data:
            return data, content_type
    raise MediaError("no image encoder available")


def thumbnail_from_mp4(path: str, max_width: int = 640) -> tuple[bytes, str]:
    """A still from the middle of any video as (image bytes, content type):
    WebP when the FFmpeg build has libwebp, else PNG (else JPEG). It is at most
    max_width wide (never upscaled) and keeps the aspect ratio."""
    if isinstance(max_width, bool) or not isinstance(max_width, int) or max_width < 16:
        raise MediaError(f"max_width must be an integer >= 16, got {max_width!r}")
    av = _av()
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = _duration(container, stream)
        target = None
        if duration > 0 and stream.time_base:
            target = int((duration / 2) / stream.time_base) + (stream.start_time or 0)
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                container.seek(0)
                target = None
        chosen = None
        try:
            for n, frame in enumerate(container.decode(stream)):
                chosen = frame
                if target is None or frame.pts is None or frame.pts >= target or n >= 600:
                    break
        except av.error.FFmpegError:
            if chosen is None:
                raise MediaError("no decodable frame in the video") from None
        if chosen is None:
            raise MediaError("no decodable frame in the video")
        w, h = chosen.width, chosen.height
        if w > max_width:
            w, h = max_width, max(1, round(h * max_width / w))
        return _encode_image(chosen.reformat(width=w, height=h, format="rgb24"))
