"""Real media made by the tests: H.264 video in MP4 (dark first frames), a large uncompressed MOV with
its index at the end, JPEG with EXIF, WAV and FLAC."""

from __future__ import annotations

import io
import math
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image


def h264_mp4(path: Path, seconds: float = 2.0, size: tuple[int, int] = (160, 96), fps: int = 25) -> Path:
    """A clip whose first half second is black, then colour bars that move; AAC-free (video only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), mode="w") as out:
        out.metadata["creation_time"] = "2024-05-01T10:00:00.000000Z"
        stream: Any = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for i in range(int(seconds * fps)):
            if i < fps // 2:
                pixels = np.zeros((height, width, 3), dtype=np.uint8)
            else:
                x = (np.arange(width)[None, :] + i * 4) % 256
                pixels = np.stack(
                    [
                        np.broadcast_to(x, (height, width)),
                        np.full((height, width), 180),
                        np.full((height, width), 90),
                    ],
                    axis=-1,
                ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def big_raw_mov(path: Path, megabytes: int = 110, size: tuple[int, int] = (640, 480)) -> Path:
    """Uncompressed video, larger than 100 MB, written with its index (moov) at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    frames = math.ceil(megabytes * 1_000_000 / (width * height * 3))
    with av.open(str(path), mode="w", format="mov") as out:
        stream: Any = out.add_stream("rawvideo", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        grey = np.full((height, width, 3), 128, dtype=np.uint8)
        for i in range(frames):
            grey[:, :, 0] = i % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(grey, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def jpeg_with_exif(path: Path, size: tuple[int, int] = (400, 300), orientation: int = 6) -> Path:
    """A JPEG stored landscape, shown portrait (orientation 6), with camera, lens, date and GPS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (200, 60, 30))
    for x in range(0, size[0], 20):
        image.paste((30, 90, 220), (x, 0, x + 10, size[1]))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R5"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769).update({0x9003: "2024:06:01 12:34:56", 0xA434: "RF24-70mm F2.8 L IS USM"})
    exif.get_ifd(0x8825).update(
        {1: "N", 2: (48.0, 51.0, 29.6), 3: "E", 4: (2.0, 17.0, 40.2)}  # Paris
    )
    image.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    return path


def wav(path: Path, seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = int(seconds * rate)
    tone = (np.sin(np.arange(samples) * 2 * math.pi * 440 / rate) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(tone, channels).tobytes())
    return path


def flac(path: Path, seconds: float = 1.5, rate: int = 48000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="flac") as out:
        stream: Any = out.add_stream("flac", rate=rate)
        stream.layout = "mono"
        samples = int(seconds * rate)
        tone = (np.sin(np.arange(samples) * 2 * math.pi * 220 / rate) * 8000).astype("<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decoded_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size
