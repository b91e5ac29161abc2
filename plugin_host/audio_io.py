"""Reading and writing audio files safely.

Every problem with an input becomes ``AudioFileError(path, one-line reason)``. Outputs are
written to a hidden temporary file next to their destination and renamed into place only
when complete and verified, so an interrupted or failed run never leaves a half-written output
and never touches an input.
"""

from __future__ import annotations

import contextlib
import fractions
import hashlib
import os
import shutil
import stat
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile, get_supported_read_formats, get_supported_write_formats

from .errors import AudioFileError

# read through libsndfile (soundfile), which pedalboard cannot: Ogg Opus (Discord recorders such as
# Craig, voice notes; pedalboard decodes Ogg Vorbis only and called an Opus .ogg "not a valid audio
# file"), Sony Wave64 (Reaper's and Sound Forge's format for takes past 4 GB) and Apple's CAF
SNDFILE_ONLY = (".caf", ".opus", ".w64")
# read through FFmpeg (PyAV), which neither can: what phones, Zoom and video podcasts give (AAC or
# ALAC in MP4/M4A, iPhone voice memos, Zoom's audio-only recordings, raw AAC, the sound of a video)
AV_ONLY = (".aac", ".m4a", ".m4b", ".mka", ".mkv", ".mov", ".mp4", ".webm")
READ_EXTENSIONS = tuple(sorted(set(get_supported_read_formats()) | set(SNDFILE_ONLY) | set(AV_ONLY)))
# pedalboard lists .aiff and .wav only, yet writes .aif (AIFF, what Logic and GarageBand name it) and
# .bwf (a RIFF WAV) by the same encoders; without them a folder of .aif takes failed file by file
# written through FFmpeg (PyAV): a phone's or Zoom's M4A comes back as M4A (AAC, or ALAC from ALAC),
# a Discord or voice-note Opus as Opus; container (muxer) by extension
AV_WRITE = {".m4a": "ipod", ".m4b": "ipod", ".opus": "opus", ".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
VIDEO_OUT = (".mkv", ".mov", ".mp4", ".webm")  # a video's picture is copied into its cleaned file as it is (no re-encoding)
WRITE_EXTENSIONS = tuple(sorted(set(get_supported_write_formats()) | {".aif", ".bwf"} | set(AV_WRITE)))
# names that say "an audio file" even where NoiseNil cannot write them (``-o take.m4a`` is a file, not a folder)
AUDIO_LOOKING = frozenset(READ_EXTENSIONS) | {".alac", ".wma", ".rf64"}
# an input format NoiseNil cannot write becomes this by default (Wave64 and CAF hold PCM as WAV does;
# raw AAC goes into an M4A, Matroska audio into a WAV)
OUTPUT_SUFFIX = {".w64": ".wav", ".caf": ".wav", ".aac": ".m4a", ".mka": ".wav"}
MP4_LIKE = (".m4a", ".m4b", ".mov", ".mp4")
AV_SHORT_FRAMES = 2048  # decoding this many samples fewer than announced is a truncated file, not rounding
AV_DTYPES = {"s16": "int16", "s16p": "int16", "s32": "int32", "s32p": "int32", "flt": "float32", "fltp": "float32", "dbl": "float64", "dblp": "float64", "u8": "int8", "u8p": "int8"}
SNDFILE_DTYPES = {"PCM_S8": "int8", "PCM_U8": "int8", "PCM_16": "int16", "PCM_24": "int24", "PCM_32": "int32", "FLOAT": "float32", "DOUBLE": "float64"}
PARTIAL_TAG = ".noisenil-partial"
BIT_DEPTHS = {"int8": 8, "int16": 16, "int24": 24, "int32": 32, "float32": 32, "float64": 32}
LOSSY = (".mp3", ".ogg")
LOSSY_WRITE = LOSSY + (".m4a", ".m4b", ".opus", ".mkv", ".mov", ".mp4", ".webm")  # outputs with no bit depth (an ALAC M4A has one: SafeWriter's codec says so)
FORMAT_BIT_DEPTHS = {".flac": (16, 24), ".aiff": (16, 24), ".aif": (16, 24)}  # others: 16, 24 or 32


def lossy_output(dst: Path, codec: str | None = None) -> bool:
    """Whether ``dst`` is written by a lossy encoder (an M4A holding ``codec="alac"`` is not)."""
    return Path(dst).suffix.lower() in LOSSY_WRITE and codec != "alac"


def audio_files_in(folder: Path) -> list[Path]:
    """The audio files under ``folder``, recursively, sorted (hidden files and folders, such as a
    Mac's ``._take.wav`` and ``.Trashes/`` on a recorder's card, and our temporaries left out): what
    ``noisenil render``, ``info`` and ``classify`` and the app open for a folder."""
    folder = Path(folder)
    return sorted(
        f
        for f in folder.rglob("*")
        if f.is_file() and f.suffix.lower() in READ_EXTENSIONS and PARTIAL_TAG not in f.name and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def output_bit_depth(dst: Path, wanted: int, explicit: bool) -> tuple[int, str | None]:
    """The bit depth to write ``dst`` with, and a note when it is not ``wanted``: a depth kept from
    the input that the output's format cannot hold (a 32-bit float WAV to FLAC) becomes the
    deepest it can (24); one the user asked for (``explicit``) is an error instead."""
    allowed = FORMAT_BIT_DEPTHS.get(Path(dst).suffix.lower(), (16, 24, 32))
    if wanted in allowed:
        return wanted, None
    kind = Path(dst).suffix.lstrip(".").upper()
    if explicit:
        from .errors import ParameterError

        raise ParameterError(f"bit depth {wanted}: {kind} holds {' or '.join(map(str, allowed))} bits")
    depth = max(allowed)
    return depth, f"{wanted}-bit input written as {depth}-bit {kind} (the deepest {kind} holds)"


AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
FORMAT_SAMPLE_RATES = {  # others: any rate NoiseNil runs at
    ".mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    ".m4a": AAC_RATES,
    ".m4b": AAC_RATES,
    ".mp4": AAC_RATES,
    ".mov": AAC_RATES,
    ".mkv": AAC_RATES,
    ".webm": OPUS_RATES,
    ".opus": OPUS_RATES,
}
CODEC_RATES_SUFFIX = {"aac": ".m4a", "opus": ".opus", "alac": ".alac"}  # whose rates and bit rates a codec has, in any container


def output_sample_rate(dst: Path, wanted: int, explicit: bool) -> tuple[int, str | None]:
    """The sample rate to write ``dst`` at, and a note when it is not ``wanted``: a rate kept from
    the input that the format cannot hold (a 96 kHz recording to MP3) becomes the lowest one it
    holds at or above it, or its highest of the same family (96 kHz -> 48 kHz, 88.2 kHz -> 44.1 kHz);
    one the user asked for (``explicit``) is an error instead."""
    allowed = FORMAT_SAMPLE_RATES.get(Path(dst).suffix.lower())
    if allowed is None or wanted in allowed:
        return wanted, None
    kind = Path(dst).suffix.lstrip(".").upper()
    if explicit:
        from .errors import ParameterError

        raise ParameterError(f"sample rate {wanted} Hz: {kind} holds {', '.join(map(str, allowed))} Hz")
    above = [r for r in allowed if r >= wanted]
    top = max(allowed)
    rate = above[0] if above else (44100 if wanted % 44100 == 0 and 44100 in allowed else top)
    return rate, f"{wanted} Hz input written as {rate} Hz {kind}" + ("" if above else f" ({kind} holds at most {top} Hz)")


@dataclass
class InputInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    file_dtype: str
    reader: str = "pedalboard"  # or "soundfile" (SNDFILE_ONLY, and Opus in .ogg)
    skip: int = 0  # decoded frames before the audio (an MP3's encoder delay), left out like its padding
    codec_lossy: bool = False  # AAC and the like in a container that may also hold lossless audio (ALAC)
    codec: str = ""  # what FFmpeg decodes (aac, alac, opus), where the container does not say
    video: bool = False  # it has a picture stream (a video podcast), which a video output copies
    start: float = 0.0  # seconds from the container's start to its first audio sample (audio that starts after the picture)
    tracks: int = 1  # sound tracks (an OBS recording may have several); the first is the one cleaned

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def lossy(self) -> bool:
        """MP3, Vorbis, Opus, AAC: decoded to float, with no bit depth of their own."""
        return self.codec_lossy or self.path.suffix.lower() in LOSSY + (".opus",)

    @property
    def bit_depth(self) -> int:
        """The depth an output keeps by default: the file's own, 24 for a lossy file (its decoder's
        float holds nothing a 24-bit PCM file loses)."""
        return 24 if self.lossy else BIT_DEPTHS.get(self.file_dtype, 16)


def chunks_of(f, size: int, little: bool = True):
    """(offset, id, size) of each chunk of the open RIFF/RF64/AIFF file ``f`` after its 12-byte
    header, ``size`` bytes long; an RF64 data chunk's size is its ds64 chunk's. The file position is
    the caller's between steps (each step seeks)."""
    pos, data64 = 12, None
    while pos + 8 <= size:
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            return
        cid, n = hdr[:4], struct.unpack("<I" if little else ">I", hdr[4:])[0]
        if cid == b"ds64":
            data64 = struct.unpack("<Q", f.read(16)[8:16])[0]
        elif cid == b"data" and n == 0xFFFFFFFF and data64 is not None:
            n = data64
        yield pos, cid, n
        pos += 8 + n + (n & 1)


def _riff_truncation(path: Path, size: int) -> str | None:
    """For WAV/AIFF: compare the data chunk's declared size with what the file holds."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return "file is shorter than its header"
        riff = head[:4] in (b"RIFF", b"RF64")
        if not (riff or head[:4] == b"FORM"):
            return None
        data_name = b"data" if riff else b"SSND"
        for pos, cid, length in chunks_of(f, size, little=riff):
            if cid == data_name:
                if head[:4] == b"RF64" or length in (0xFFFFFFFF, 0):
                    return None  # RF64 / streaming writers: size lives elsewhere or is unknown
                if pos + 8 + length > size:
                    return f"truncated: header announces {length} bytes of audio, file holds {size - pos - 8}"
                return None
    return None


class FlacChecksum:
    """Recomputes the MD5 that FLAC stores over its decoded samples, to catch damaged or truncated files.

    pedalboard (JUCE) decodes a truncated FLAC without complaint and fills the rest with silence;
    the checksum tells. JUCE reads N-bit integers as ``int / (2**(N-1) - 1)``, which is undone
    exactly here. ``None`` when the file has no checksum (all zero) or an unusual bit depth.
    """

    def __init__(self, md5: bytes, bits: int):
        self.expected, self.bits = md5, bits
        self.scale = float(2 ** (bits - 1) - 1)
        self._md5 = hashlib.md5()

    @classmethod
    def for_file(cls, path: Path) -> FlacChecksum | None:
        with open(path, "rb") as f:
            head = f.read(42)
        if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:  # STREAMINFO comes first
            return None
        packed = int.from_bytes(head[18:26], "big")
        bits = ((packed >> 36) & 0x1F) + 1
        md5 = head[26:42]
        if md5 == bytes(16) or bits not in (8, 16, 24, 32):
            return None
        return cls(md5, bits)

    def update(self, chunk: np.ndarray) -> None:
        ints = np.round(chunk.T.astype(np.float64) * self.scale).astype("<i4")
        if self.bits == 24:
            self._md5.update(ints.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes())
        else:
            self._md5.update(ints.astype({8: "<i1", 16: "<i2", 32: "<i4"}[self.bits]).tobytes())

    @property
    def ok(self) -> bool:
        return self._md5.digest() == self.expected


def probe(path: str | os.PathLike) -> InputInfo:
    """Check that ``path`` is a readable, complete, non-empty audio file NoiseNil can process."""
    p = Path(path)
    if not p.exists():
        raise AudioFileError(p, "no such file" if not p.is_symlink() else "broken symbolic link")
    if p.is_dir():
        raise AudioFileError(p, "is a folder with no audio files in it")  # folders with some are opened file by file
    if not p.is_file():
        raise AudioFileError(p, "is not a regular file")
    if p.suffix.lower() not in READ_EXTENSIONS:
        raise AudioFileError(p, f"unsupported format {p.suffix or '(no extension)'!r}; NoiseNil reads {', '.join(READ_EXTENSIONS)}")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise AudioFileError(p, f"cannot read it ({exc.strerror or exc})") from None
    if size == 0:
        raise AudioFileError(p, "empty file (0 bytes)")
    if p.suffix.lower() in (".wav", ".bwf", ".aif", ".aiff"):
        problem = _riff_truncation(p, size)
        if problem:
            raise AudioFileError(p, problem)
    info = _probe_sndfile(p) if p.suffix.lower() in SNDFILE_ONLY else _probe_av(p) if p.suffix.lower() in AV_ONLY else None
    try:
        if info is None:
            with AudioFile(str(p)) as f:
                info = InputInfo(p, int(round(f.samplerate)), int(f.num_channels), int(f.frames), str(f.file_dtype))
            gap = mp3_gapless(p) if p.suffix.lower() == ".mp3" else None
            if gap and info.frames > sum(gap):  # the audio the encoder was given, no more
                info.skip, info.frames = gap[0], info.frames - sum(gap)
    except (ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).split("\n")[0]
        opus_in_ogg = "does not seem to contain audio" in reason and p.suffix.lower() == ".ogg"
        info = _probe_sndfile(p, opus_only=True) if opus_in_ogg else None
        if info is None:
            if "does not seem to contain audio" in reason:
                reason = "not a valid audio file (unknown or corrupt data)"
            raise AudioFileError(p, reason) from None
    if info.frames <= 0:
        raise AudioFileError(p, "no audio samples (0 frames)")
    if info.channels <= 0:
        raise AudioFileError(p, "no audio channels")
    if not (8000 <= info.sample_rate <= 192000):
        raise AudioFileError(p, f"sample rate {info.sample_rate} Hz is outside 8000..192000 Hz")
    return info


MP3_DECODER_DELAY = 529  # samples every standard MP3 decoder adds before the encoder's delay


def mp3_gapless(path: Path) -> tuple[int, int] | None:
    """(frames to skip, frames to drop at the end) of an MP3's decoded stream, from the encoder
    delay and padding its LAME/Xing header records (LAME, ffmpeg and most encoders write it); None
    without one. A decoder that ignores it puts ~1105 samples (23 ms at 48 kHz) of the encoder's
    silence before the audio and some after, and every MP3 generation would add more."""
    with open(path, "rb") as f:
        head = f.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:  # a tag before the first frame: its size is syncsafe
            start = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)) + (10 if head[5] & 0x10 else 0)
        f.seek(start)
        frame = f.read(4096)
    sync = next((i for i in range(len(frame) - 4) if frame[i] == 0xFF and frame[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return None
    frame = frame[sync:]
    at = next((frame.find(tag, 4, 64) for tag in (b"Xing", b"Info") if frame.find(tag, 4, 64) > 0), -1)
    if at < 0 or len(frame) < at + 8:
        return None
    flags = int.from_bytes(frame[at + 4 : at + 8], "big")
    lame = at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    if len(frame) < lame + 24 or not frame[lame : lame + 4].isalpha():  # "LAME", "Lavc", "Lavf", ...
        return None
    b = frame[lame + 21 : lame + 24]
    delay, padding = (b[0] << 4) | (b[1] >> 4), ((b[1] & 0x0F) << 8) | b[2]
    if delay == 0 and padding == 0:
        return None
    return delay + MP3_DECODER_DELAY, max(0, padding - MP3_DECODER_DELAY)


def _probe_sndfile(p: Path, opus_only: bool = False) -> InputInfo | None:
    """A file libsndfile reads (``SNDFILE_ONLY``; with ``opus_only``, Opus in an .ogg), or None."""
    try:
        import soundfile as sf

        i = sf.info(str(p))
    except Exception:  # noqa: BLE001 - soundfile's errors vary by version and format
        return None
    if opus_only and (i.format != "OGG" or i.subtype != "OPUS"):
        return None
    codec = "opus" if i.subtype == "OPUS" else ""  # an Opus .ogg (Craig, Discord) is written back as Opus, not Vorbis
    return InputInfo(p, int(i.samplerate), int(i.channels), int(i.frames), SNDFILE_DTYPES.get(i.subtype, "float32"), reader="soundfile", codec=codec)


_DECODED_FRAMES: dict[tuple, int] = {}  # (path, size, mtime) -> samples, for files whose length is found by decoding


def _probe_av(p: Path) -> InputInfo:
    """An M4A/AAC/MP4/... file's first audio stream, through FFmpeg (PyAV). Its length is the
    container's (encoder priming and padding left out) or, where it records none, the decoded one."""
    try:
        import av
    except ImportError:
        raise AudioFileError(p, f"reading {p.suffix} files needs PyAV ('pip install av')") from None
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise AudioFileError(p, "no audio in it (a video without sound?)")
            stream = container.streams.audio[0]
            ctx = stream.codec_context
            rate, channels = int(ctx.sample_rate), int(ctx.channels)
            exact = p.suffix.lower() in MP4_LIKE and stream.duration and stream.time_base  # MP4 times its audio in samples
            frames = round(stream.duration * stream.time_base * rate) if exact else 0
            if frames <= 0:  # raw AAC (a guess from its bit rate), Matroska (milliseconds): count by decoding (an hour of AAC: about 2 s)
                stat_key = (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                frames = _DECODED_FRAMES.get(stat_key) or sum(frame.samples for frame in container.decode(stream))
                _DECODED_FRAMES[stat_key] = frames  # a render probes a file two or three times
            codec, sample_format = ctx.name, ctx.format.name if ctx.format else "fltp"
            video = bool(container.streams.video)
            late = bool(video and stream.start_time)
            tracks = len(container.streams.audio)
    except AudioFileError:
        raise
    except av.error.InvalidDataError:
        raise AudioFileError(p, "not a valid audio file (unknown or corrupt data)") from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg's other errors and PyAV's vary; they quote the path, which the message already names
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise AudioFileError(p, f"cannot decode it ({why})") from None
    start = 0.0
    if late:  # where its first decoded sample plays against the picture (the priming already skipped), from a fresh read
        with contextlib.suppress(Exception), av.open(str(p)) as container:
            first = next(container.decode(container.streams.audio[0]), None)
            start = float(first.time) if first is not None and first.time else 0.0
    lossless = codec in ("alac", "flac", "wavpack", "tta") or codec.startswith("pcm_")
    dtype = AV_DTYPES.get(sample_format, "float32")
    if dtype == "int32" and getattr(ctx, "bits_per_raw_sample", 0) == 24:  # 24-bit ALAC decodes to 32-bit ints
        dtype = "int24"
    return InputInfo(p, rate, channels, frames, dtype if lossless else "float32", reader="av", codec_lossy=not lossless, codec=codec, video=video, start=max(0.0, start), tracks=tracks)


def _av_chunks(info: InputInfo, chunk_frames: int):
    """float32 (channels, n) chunks of the first audio stream, ``info.frames`` in all."""
    import av

    with av.open(str(info.path)) as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=stream.codec_context.sample_rate)
        pending, have, left = [], 0, info.frames

        def frames():
            try:
                for frame in container.decode(stream):
                    if frame.format.name == "fltp":  # AAC, Opus, Vorbis: as decoded
                        yield frame
                    else:  # ALAC's and PCM's integers
                        yield from to_float.resample(frame)
                yield from to_float.resample(None)
            except av.error.FFmpegError as exc:  # a cut or damaged file; FFmpeg's own words, not its errno and call
                raise AudioFileError(info.path, f"truncated or damaged ({exc.strerror or type(exc).__name__})") from None

        for frame in frames():
            a = frame.to_ndarray()[:, :left]
            left -= a.shape[1]
            pending.append(a)
            have += a.shape[1]
            while have >= chunk_frames:
                block = np.concatenate(pending, axis=1)
                yield np.ascontiguousarray(block[:, :chunk_frames], dtype=np.float32)
                pending, have = [block[:, chunk_frames:]], have - chunk_frames
            if left <= 0:
                break
        if have:
            yield np.ascontiguousarray(np.concatenate(pending, axis=1), dtype=np.float32)
        if left > AV_SHORT_FRAMES:  # an M4A whose index (written first, as phones do) promises more than its data holds
            raise AudioFileError(info.path, f"truncated: {info.frames - left} of the {info.frames} samples its header announces decode")


def _decoded(info: InputInfo, chunk_frames: int):
    """float32 (channels, n) chunks straight from the decoder."""
    if info.reader == "av":
        yield from _av_chunks(info, chunk_frames)
        return
    if info.reader == "soundfile":
        import soundfile as sf

        with sf.SoundFile(str(info.path)) as f:
            while True:
                chunk = f.read(chunk_frames, dtype="float32", always_2d=True)
                if chunk.shape[0] == 0:
                    return
                yield np.ascontiguousarray(chunk.T)
    with AudioFile(str(info.path)) as f:
        if info.skip:
            f.seek(info.skip)
        end = min(f.frames, info.skip + info.frames)
        while f.tell() < end:
            chunk = f.read(min(chunk_frames, end - f.tell()))
            if chunk.shape[1] == 0:
                return
            yield chunk


def output_suffix(src: str | os.PathLike) -> str:
    """The extension an output of ``src`` gets unless asked otherwise: its own, where NoiseNil can write it."""
    suffix = Path(src).suffix
    return OUTPUT_SUFFIX.get(suffix.lower(), suffix)


def clean_name(src: str | os.PathLike) -> str:
    """The name a cleaned copy of ``src`` gets when nobody chose one: ``NAME_clean.EXT``."""
    return f"{Path(src).stem}_clean{output_suffix(src)}"


def read_chunks(info: InputInfo, chunk_frames: int):
    """Yield float32 (channels, n) chunks at the file's own rate.

    NaN/Inf samples are an error, and so is a FLAC whose checksum does not match (raised after
    the last chunk, so a caller writing an output must not commit it before the loop ends).
    """
    done = 0
    rate = info.sample_rate
    checksum = FlacChecksum.for_file(info.path) if info.path.suffix.lower() == ".flac" else None
    try:
        for chunk in _decoded(info, chunk_frames):
            if not np.all(np.isfinite(chunk)):
                bad = int(np.argmax(~np.isfinite(chunk).all(axis=0)))
                raise AudioFileError(info.path, f"contains NaN/Inf samples (first at {(done + bad) / rate:.3f} s)")
            done += chunk.shape[1]
            if checksum is not None:
                checksum.update(chunk)
            yield chunk
    except (ValueError, RuntimeError, OSError) as exc:
        raise AudioFileError(info.path, f"cannot decode audio ({str(exc).splitlines()[0]})") from None
    if checksum is not None and not checksum.ok:
        raise AudioFileError(info.path, "truncated or damaged (FLAC checksum mismatch)")


_UMASK = os.umask(0o022)  # read once, at import: os.umask can only be read by setting it
os.umask(_UMASK)


def output_mode(dst: Path) -> int:
    """The permissions an output at ``dst`` gets: those of the file it replaces, else what a new
    file gets here (0o666 less the umask). The temporary it is written as is private (0o600)."""
    try:
        return stat.S_IMODE(dst.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


def partial_path(dst: Path) -> Path:
    """A fresh hidden temporary path next to ``dst`` that keeps its extension (pedalboard picks the format by it)."""
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=f"{PARTIAL_TAG}{dst.suffix}")
    os.close(fd)
    return Path(name)


def remove_stale_partials(dst: Path) -> None:
    """Delete temporaries a killed run left for ``dst`` (only files matching our own pattern)."""
    for stale in dst.parent.glob(f".{dst.stem}.*{PARTIAL_TAG}{dst.suffix}"):
        with contextlib.suppress(OSError):
            stale.unlink()


def check_free_space(folder: Path, needed_bytes: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed_bytes * 1.05 + (1 << 20):
        raise AudioFileError(folder, f"not enough disk space (need about {needed_bytes / 1e6:.1f} MB, {free / 1e6:.1f} MB free)")


class AvWriter:
    """pedalboard's writer interface (``write``, ``close``) over FFmpeg (PyAV): AAC or ALAC in an
    M4A, Opus in Ogg, and the sound of a video (``video_from``: its other streams are copied in).
    ``kbps``: the lossy codecs' bit rate. Frame pts count samples, so the MP4 muxer writes an edit
    list for the encoder's priming and a reader gets back exactly what was written, sample for sample."""

    def __init__(self, path: Path, sample_rate: int, channels: int, codec: str, kbps: float | None, bit_depth: int, video_from: Path | None = None, start: float = 0.0):
        import av

        self._av = av
        self._source = self._packets = None
        self._layout = {1: "mono", 2: "stereo"}[channels]
        muxer = AV_WRITE.get(path.suffix.lower(), "ogg")  # Opus into an .ogg: the Ogg muxer
        mp4 = muxer in ("ipod", "mp4", "mov")  # the edit list counts in the movie's timescale: samples, not FFmpeg's milliseconds
        self._container = av.open(str(path), "w", format=muxer, options={"movie_timescale": str(sample_rate)} if mp4 else {})
        try:
            self._copy_to = {}
            encoder = {"opus": "libopus"}.get(codec, codec)
            if video_from is None:
                self._stream = self._container.add_stream(encoder, rate=sample_rate, layout=self._layout)
            else:  # the picture, and sound tracks after the first (OBS writes several), stream-copied in the source's order
                self._source = av.open(str(video_from))
                cleaned = self._source.streams.audio[0].index
                for s in self._source.streams:
                    if s.index == cleaned:
                        self._stream = self._container.add_stream(encoder, rate=sample_rate, layout=self._layout)
                    elif s.type in ("video", "audio"):
                        self._copy_to[s.index] = self._container.add_stream_from_template(s)
                self._packets = self._source.demux(*[self._source.streams[i] for i in self._copy_to])
            self._format = {"aac": "fltp", "opus": "flt", "alac": "s16p" if bit_depth <= 16 else "s32p"}[codec]
            self._stream.codec_context.format = self._format  # FFmpeg's ALAC stores s32p as 24 bits
            if kbps and codec != "alac":
                self._stream.bit_rate = int(kbps * 1000)
            self._fifo = av.AudioFifo()
            self._rate, self._pts = sample_rate, round(start * sample_rate)
        except BaseException:
            self._close_source()
            self._container.close()
            raise

    def _close_source(self) -> None:
        if self._source is not None:
            source, self._source, self._packets = self._source, None, None
            source.close()

    def _copy_pictures(self, until: float | None) -> None:
        """Mux the source's copied packets (picture, further sound tracks) up to ``until`` seconds
        (all with None), interleaved with the cleaned sound so the muxer buffers little."""
        if self._packets is None:
            return
        for packet in self._packets:
            if packet.size == 0:  # the demuxer's flush packet (a Matroska packet may have no dts: it is still a picture)
                continue
            when = packet.dts if packet.dts is not None else packet.pts
            packet.stream = self._container.streams[self._copy_to[packet.stream.index].index]
            self._container.mux(packet)
            if until is not None and when is not None and when * packet.time_base > until:
                return
        self._packets = None

    def _frame(self, x: np.ndarray):
        if self._format == "flt":  # packed: one row of interleaved samples
            data = np.ascontiguousarray(x.T).reshape(1, -1)
        elif self._format == "fltp":
            data = np.ascontiguousarray(x)
        else:
            scale = 32767 if self._format == "s16p" else 8388607 * 256  # 24-bit ALAC: the top 24 of 32 bits
            data = np.ascontiguousarray(np.round(np.clip(x, -1.0, 1.0) * scale).astype(np.int16 if self._format == "s16p" else np.int32))
        frame = self._av.AudioFrame.from_ndarray(data, format=self._format, layout=self._layout)
        frame.sample_rate, frame.pts = self._rate, None  # the fifo's frames are stamped on the way out
        return frame

    def _mux(self, frames) -> None:
        for frame in frames:
            if frame is not None:  # samples since the container's start: the muxer writes the priming's edit list from them
                frame.pts, frame.time_base = self._pts, fractions.Fraction(1, self._rate)
                self._pts += frame.samples
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def write(self, x: np.ndarray) -> None:
        self._fifo.write(self._frame(x))
        size = self._stream.codec_context.frame_size or 4096
        self._mux(self._fifo.read_many(size))
        self._copy_pictures(self._pts / self._rate)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            rest = self._fifo.read()
            self._mux(([rest] if rest is not None else []) + [None])
            self._copy_pictures(None)
        finally:
            self._close_source()
            container, self._container = self._container, None
            container.close()


class SafeWriter:
    """Writes to a temporary file next to ``dst``; ``commit()`` verifies and renames it into place."""

    def __init__(self, dst: Path, sample_rate: int, channels: int, bit_depth: int = 16, quality=None, codec: str | None = None, video_from: Path | None = None, start: float = 0.0):
        self.dst = dst
        if dst.suffix.lower() not in WRITE_EXTENSIONS:
            raise AudioFileError(dst, f"cannot write {dst.suffix or '(no extension)'!r} files; choose one of {', '.join(WRITE_EXTENSIONS)}")
        if not dst.parent.is_dir():
            raise AudioFileError(dst.parent, "output folder does not exist")
        if not os.access(dst.parent, os.W_OK):
            raise AudioFileError(dst.parent, "output folder is not writable")
        self.tmp = partial_path(dst)
        self.frames = 0
        self.clipped = 0
        self._closed = False
        suffix = dst.suffix.lower()
        self._lossy = lossy_output(dst, codec)
        self._av = suffix in AV_WRITE or codec == "opus"  # FFmpeg writes it (Opus into an .ogg too)
        self._integer = not self._lossy and bit_depth < 32 or suffix == ".flac" or codec == "alac"
        kwargs = {} if suffix in LOSSY else {"bit_depth": bit_depth}
        if quality is not None:
            kwargs["quality"] = quality
        try:
            if self._av:
                kbps = float(quality.split()[0]) if quality else None
                default = "opus" if suffix in (".opus", ".webm") else "aac"
                self._file = AvWriter(self.tmp, sample_rate, channels, codec or default, kbps, bit_depth, video_from, start)
            else:
                self._file = AudioFile(str(self.tmp), "w", sample_rate, channels, **kwargs)
        except Exception as exc:  # noqa: BLE001 - pedalboard's ValueError/RuntimeError, FFmpeg's through PyAV: one line either way
            self.tmp.unlink(missing_ok=True)
            raise AudioFileError(dst, f"cannot create output ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        except BaseException:  # Ctrl-C / SIGTERM right here: leave nothing behind
            self.tmp.unlink(missing_ok=True)
            raise

    def __enter__(self) -> SafeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # anything went wrong (Ctrl-C included): leave nothing behind
            self.abort()

    def write(self, chunk: np.ndarray) -> None:
        if chunk.shape[1] == 0:
            return
        if self._integer:
            over = np.abs(chunk) > 1.0
            if over.any():
                self.clipped += int(over.sum())
                chunk = np.clip(chunk, -1.0, 1.0)
        try:
            self._file.write(np.ascontiguousarray(chunk, dtype=np.float32))
        except (ValueError, RuntimeError, OSError) as exc:
            raise AudioFileError(self.dst, f"write failed, disk full? ({getattr(exc, 'strerror', None) or str(exc).splitlines()[0]})") from None
        self.frames += chunk.shape[1]

    def close(self) -> None:
        """Finish the temporary file without moving it into place (for intermediate passes, or to
        check it before ``commit``)."""
        if self._closed:
            return
        try:
            self._file.close()
        except (ValueError, RuntimeError, OSError) as exc:
            self.abort()
            raise AudioFileError(self.dst, f"write failed, disk full? ({getattr(exc, 'strerror', None) or str(exc).splitlines()[0]})") from None
        self._closed = True

    def commit(self, finish: Callable[[Path], None] | None = None) -> Path:
        """Close, verify and rename into place; ``finish(tmp)`` runs on the closed temporary file
        before it is synced and verified (render uses it to copy the input's tags)."""
        self.close()
        if finish is not None:  # before the fsync: what it writes is made durable with the audio
            try:
                finish(self.tmp)
            except BaseException:
                self.abort()
                raise
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
        except OSError as exc:
            self.abort()
            raise AudioFileError(self.dst, f"write failed ({exc.strerror or exc})") from None
        try:
            if self._av:
                written = probe(self.tmp).frames  # its own reader: the edit list's length, the Opus pre-skip left out
            else:
                with AudioFile(str(self.tmp)) as f:
                    written = f.frames
        except (ValueError, RuntimeError, OSError, AudioFileError):
            written = -1
        slack = 4096 if self._lossy else 0
        if not (self.frames - slack <= written <= self.frames + (slack and 8192)):
            self.abort()
            raise AudioFileError(self.dst, f"output incomplete ({written} of {self.frames} frames written; disk full?)")
        with contextlib.suppress(OSError):  # a file system without permissions (FAT) keeps its own
            os.chmod(self.tmp, output_mode(self.dst))
        os.replace(self.tmp, self.dst)
        return self.dst

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        self.tmp.unlink(missing_ok=True)
