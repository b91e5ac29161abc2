"""Bit rates of lossy files: what an input was encoded at, and what its lossy output (MP3, Ogg,
M4A, Opus, a video's sound) is written at.

A cleaned MP3 keeps its input's bit rate (pedalboard's encoder would otherwise write 320 kbps, five
times a 64 kbps podcast's size, with nothing gained); ``--bitrate-kbps`` chooses one. Rates are
rounded up to the next one the format offers, and capped at the most it holds at the sample rate.
"""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path

import numpy as np

from .audio_io import LOSSY_WRITE

MP3_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # pedalboard's LAME: constant bit rates
OGG_STEPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)  # its Vorbis quality steps, named by their stereo 44.1 kHz rate
AAC_KBPS, OPUS_KBPS = (16, 512, 64), (6, 510, 48)  # FFmpeg's AAC and libopus: lowest, highest, default per channel
AV_KBPS = {".m4a": AAC_KBPS, ".m4b": AAC_KBPS, ".mp4": AAC_KBPS, ".mov": AAC_KBPS, ".mkv": AAC_KBPS, ".opus": OPUS_KBPS, ".webm": OPUS_KBPS}
BITRATE_RANGE_KBPS = (8.0, 500.0)
KEEP_TOLERANCE = 0.98  # a measured 128.7 kbps (headers included) is still a 128 kbps file


def mp3_ceiling_kbps(sample_rate: int) -> int:
    """The most an MP3 holds: MPEG-1 (32 kHz and up) 320 kbps, MPEG-2 (16-24 kHz) 160, MPEG-2.5 (8-12 kHz) 64.
    LAME clamps anything above it there."""
    return 320 if sample_rate >= 32000 else 160 if sample_rate >= 16000 else 64


def source_kbps(info) -> float | None:
    """The average bit rate of a lossy input's audio (an ``InputInfo``), or None for lossless audio or
    where it cannot be told."""
    suffix = info.path.suffix.lower()
    try:
        if suffix == ".mp3":
            from mutagen.mp3 import MP3

            bps = MP3(info.path).info.bitrate  # a VBR file's average, from its Xing header
            return bps / 1000 if bps else None
        if suffix in (".ogg", ".opus"):
            audio = ogg_audio_bytes(info.path)
            return audio * 8 / info.seconds / 1000 if audio else None
    except Exception:  # noqa: BLE001 - a tag library's view of a file it cannot parse: no figure, never a failed render
        return None
    if info.codec_lossy and info.reader == "av":
        try:
            import av

            with av.open(str(info.path)) as container:
                bps = container.streams.audio[0].bit_rate or container.bit_rate
            return bps / 1000 if bps else None
        except Exception:  # noqa: BLE001 - as above
            return None
    return None


def ogg_audio_bytes(path: Path) -> int:
    """Bytes of an Ogg file from its first audio page to its end (Vorbis and Opus headers, a cover
    art picture among them, end on pages of granule position 0; audio starts on a fresh page)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = 0
        while pos + 27 <= size:
            f.seek(pos)
            head = f.read(27)
            if head[:4] != b"OggS":
                return 0
            granule = struct.unpack("<q", head[6:14])[0]
            if granule > 0:
                return size - pos
            lacing = f.read(head[26])
            pos += 27 + head[26] + sum(lacing)
    return 0


@functools.lru_cache(maxsize=32)
def ogg_nominal_kbps(sample_rate: int, channels: int) -> tuple[int, ...]:
    """The nominal rate libvorbis gives each of ``OGG_STEPS`` at this rate and layout (a mono 48 kHz
    "128 kbps" is 86 kbps), from one-sample encodes; the steps' names where it records none."""
    from mutagen.oggvorbis import OggVorbis
    from pedalboard.io import AudioFile

    rates = []
    for step in OGG_STEPS:
        buf = io.BytesIO()
        try:
            with AudioFile(buf, "w", sample_rate, channels, quality=f"{step} kbps", format="ogg") as f:
                f.write(np.zeros((channels, 1), np.float32))
            buf.seek(0)
            rates.append(OggVorbis(buf).info.bitrate // 1000 or step)
        except Exception:  # noqa: BLE001 - a layout libvorbis has no setting for: fall back to the name
            rates.append(step)
    return tuple(rates)


def output_quality(dst: Path, sample_rate: int, channels: int, kept_kbps: float | None, wanted_kbps: float | None = None) -> tuple[str | None, str | None]:
    """pedalboard's ``quality`` for writing ``dst`` (None: its default, the format's best) and a note
    for the render's summary where the rate had to change. ``wanted_kbps`` (the user's) wins over
    ``kept_kbps`` (the input's)."""
    suffix = dst.suffix.lower()
    if suffix not in LOSSY_WRITE:
        return None, (f"bit rate {wanted_kbps:g} kbps not used: {suffix.lstrip('.').upper()} is lossless" if wanted_kbps else None)
    target = wanted_kbps or kept_kbps
    if suffix in AV_KBPS:  # any rate in range; a lossless input gets a speech-transparent default, not the codec's top
        low, high, per_channel = AV_KBPS[suffix]
        pick = round(min(max(target or per_channel * channels, low), high))
        name = "Opus" if AV_KBPS[suffix] is OPUS_KBPS else "AAC"
        note = f"{name} holds {low}-{high} kbps: written at {pick} kbps" if target and abs(pick - target) > 1 else None
        return f"{pick} kbps", note
    if not target:
        return None, None
    if suffix == ".mp3":
        ceiling = mp3_ceiling_kbps(sample_rate)
        offered = [k for k in MP3_KBPS if k <= ceiling]
        pick = next((k for k in offered if k >= target * KEEP_TOLERANCE), offered[-1])
        note = None
        if target > ceiling * 1.02:
            note = f"MP3 at {sample_rate} Hz holds at most {ceiling} kbps: written at {pick} kbps"
        elif wanted_kbps and pick != wanted_kbps:
            note = f"{wanted_kbps:g} kbps is not an MP3 rate: written at {pick} kbps"
        return f"{pick} kbps", note
    nominal = ogg_nominal_kbps(sample_rate, channels)
    index = next((i for i, k in enumerate(nominal) if k >= target * KEEP_TOLERANCE), len(nominal) - 1)
    note = f"Ogg Vorbis at {sample_rate} Hz, {channels} ch holds at most {nominal[-1]} kbps: written at that" if target > nominal[-1] * 1.02 else None
    return f"{OGG_STEPS[index]} kbps", note
