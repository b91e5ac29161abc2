"""Render one file through a chain: chunked (flat memory), aligned, atomic, optionally loudness-normalised."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pedalboard

from .audio_io import CODEC_RATES_SUFFIX, LOSSY_WRITE, VIDEO_OUT, lossy_output, SafeWriter, check_free_space, output_bit_depth, output_sample_rate, probe, read_chunks, remove_stale_partials
from .bitrate import BITRATE_RANGE_KBPS, output_quality, source_kbps
from .chain import LOUDNESS_RANGE_LUFS, NATIVE_BUFFER_SIZE, TRUE_PEAK_RANGE_DBTP, Chain, load_preset, prime_native, scan_input
from .declip import FULL_SCALE_DB, Declip
from .dehum import SHORTEST_S, Dehum
from .level import Level
from .effects import Denoise
from .engine import Resampler, check_sample_rate
from .errors import AudioFileError, ParameterError, check_range
from .clipping import ClipCounter
from .loudness import LoudnessMeter, normalization_gain_db
from .metadata import carry as carry_metadata
from .processor import MAX_ATTENUATION_DB

CHUNK_SECONDS = 5.0


@dataclass
class RenderOptions:
    model: str | None = None
    preset: str | None = None
    attenuation_limit_db: float | None = None
    loudness_lufs: float | None = None
    true_peak_dbtp: float = -1.0
    sample_rate: int | None = None
    bit_depth: int | None = None
    channels: int | None = None
    bitrate_kbps: float | None = None  # lossy outputs (MP3, M4A, Opus, Ogg, video); None: a lossy input's own, else the format's default
    declip: bool = False  # fill in clipped peaks first (a Declip step in front of the chain)
    dehum: bool = False  # notch out mains hum before denoising (a Dehum step, after any Declip)
    level: bool = False  # even out the voices' levels last (a Level step at the end of the chain)

    def resolved(self, label: str | None) -> RenderOptions:
        """With ``model="auto"``: the options the classifier's ``label`` calls for (see auto_policy.json)."""
        from dataclasses import replace

        from .auto import AUTO, choice_for, load_policy

        if self.model != AUTO:
            return self
        model, limit = choice_for(label) if label else (load_policy()["default"]["model"], 100.0)
        if self.attenuation_limit_db is not None:  # the user's limit still caps it
            limit = min(limit, self.attenuation_limit_db)
        # and mains hum, which no denoiser takes out from under a voice, is notched where the file has any
        return replace(self, model=model, attenuation_limit_db=limit, dehum=True)

    def build(self) -> tuple[Chain, float | None, float]:
        """The chain to run, the loudness target (None = leave as is) and the true-peak ceiling."""
        from .auto import AUTO

        if self.attenuation_limit_db is not None:  # also with auto, where it only caps the policy's limit
            check_range("attenuation_limit_db", self.attenuation_limit_db, 0.0, MAX_ATTENUATION_DB)
        if self.bitrate_kbps is not None:
            check_range("bitrate_kbps", self.bitrate_kbps, BITRATE_RANGE_KBPS[0], BITRATE_RANGE_KBPS[1])
        if self.model == AUTO:
            return self.resolved(None).build()
        if self.preset:
            preset = load_preset(self.preset, model=self.model)
            chain, target, ceiling = preset.chain, preset.loudness_lufs, preset.true_peak_dbtp
            if self.attenuation_limit_db is not None:
                for step in chain:
                    if isinstance(step, Denoise):
                        step.attenuation_limit_db = self.attenuation_limit_db
        else:
            limit = MAX_ATTENUATION_DB if self.attenuation_limit_db is None else self.attenuation_limit_db
            chain, target, ceiling = Chain([Denoise(self.model, attenuation_limit_db=limit)]), None, self.true_peak_dbtp
        if self.dehum and not any(isinstance(step, Dehum) for step in chain):
            chain.insert(1 if len(chain) and isinstance(chain[0], Declip) else 0, Dehum())
        if self.declip and not any(isinstance(step, Declip) for step in chain):
            chain.insert(0, Declip())
        if self.level and not any(isinstance(step, Level) for step in chain):
            chain.append(Level())
        if self.sample_rate is not None:
            check_sample_rate(self.sample_rate)
        if self.loudness_lufs is not None:
            target, ceiling = self.loudness_lufs, self.true_peak_dbtp
        if target is not None:
            target = check_range("loudness target (LUFS)", target, *LOUDNESS_RANGE_LUFS)
            ceiling = check_range("true-peak ceiling (dBTP)", ceiling, *TRUE_PEAK_RANGE_DBTP)
        return chain, target, ceiling


@dataclass
class RenderResult:
    src: Path
    dst: Path
    seconds: float
    elapsed: float
    loudness_lufs: float | None = None
    gain_db: float = 0.0
    peak_limited: bool = False
    clipped_samples: int = 0
    input_clips: int = 0  # places where the input clipped (flat tops at full scale)
    notes: list[str] = field(default_factory=list)


FULL_SCALE_MARGIN_DB = -0.01  # where a declipped or levelled file's highest sample lands when it is turned down
SILENT_CHANNEL_DB = 40.0  # a channel this far below the loudest (RMS over the file) is a dead input, not a voice
CHANNEL_NAMES = {2: ("left", "right")}
MAX_CHANNELS = {".mp3": 2, ".flac": 8, ".m4a": 2, ".m4b": 2, ".opus": 2, ".mp4": 2, ".mov": 2, ".mkv": 2, ".webm": 2}  # what their encoders hold; WAV, AIFF and Ogg Vorbis take more


def _convert_channels(x: np.ndarray, channels: int | None, live: list[int] | None = None) -> np.ndarray:
    """``x`` as ``channels`` channels; a downmix to mono averages the ``live`` channels (all by default)."""
    if channels is None or channels == x.shape[0]:
        return x
    if channels == 1:
        return (x if live is None else x[live]).mean(axis=0, keepdims=True)
    if x.shape[0] == 1:
        return np.repeat(x, channels, axis=0)
    raise ParameterError(f"cannot turn {x.shape[0]} channels into {channels}; use 1 (downmix) or start from mono")


def channel_names(indices: list[int], count: int) -> str:
    """'the right channel', 'channel 3', 'channels 1, 2 and 4'."""
    if count in CHANNEL_NAMES:
        return " and ".join(f"the {CHANNEL_NAMES[count][i]}" for i in indices) + (" channels" if len(indices) > 1 else " channel")
    numbers = [str(i + 1) for i in indices]
    return f"channel {numbers[0]}" if len(numbers) == 1 else f"channels {', '.join(numbers[:-1])} and {numbers[-1]}"


def silent_channels(rms_db: np.ndarray) -> list[int]:
    """The channels of a recording that are dead inputs (a mic on input 1 of a two-channel
    interface recorded as stereo): ``SILENT_CHANNEL_DB`` below the loudest, itself not silent."""
    loudest = float(np.max(rms_db))
    if len(rms_db) < 2 or loudest < -70.0:
        return []
    return [i for i, level in enumerate(rms_db) if level < loudest - SILENT_CHANNEL_DB]


def rms_db(power: np.ndarray, frames: int) -> np.ndarray:
    """Each channel's RMS level, dBFS, from its summed squares over ``frames`` samples."""
    return 10 * np.log10(power / max(1, frames) + 1e-20)


def channel_rms_db(info) -> np.ndarray:
    """Each channel's RMS level over the whole file, dBFS (one read)."""
    power = np.zeros(info.channels)
    for x in read_chunks(info, int(CHUNK_SECONDS * info.sample_rate)):
        power += np.sum(np.square(x, dtype=np.float64), axis=1)
    return rms_db(power, info.frames)


LIMITER_HEADROOM_DB = 1.5  # the limiter aims this far below the true-peak ceiling (inter-sample overs)


def _signed(db: float) -> str:
    return f"{db:+.1f}".replace("+0.0", "0.0").replace("-0.0", "0.0")


def _copy_with_gain(src: Path, writer: SafeWriter, gain_db: float, effect=None, meter: LoudnessMeter | None = None) -> None:
    gain = np.float32(10 ** (gain_db / 20))
    info = probe(src)
    for y in read_chunks(info, int(CHUNK_SECONDS * info.sample_rate)):
        y = y * gain
        if effect is not None:
            y = effect(y)
        if meter is not None:
            meter.add(y)
        writer.write(y)


def _normalize_loudness(pass1: Path, dst: Path, meter: LoudnessMeter, target: float, ceiling: float, bit_depth: int, result, temps: list, finish=None, quality=None, codec=None, check=None, video_from=None, start=0.0) -> float:
    """Gain to the target loudness; if that would push the true peak over the ceiling, limit first.
    With ``check`` (a lossy output), ``check(tmp)`` gives the encoded file's decoded overshoot of the
    true-peak ceiling and whether to keep it anyway; over it and not kept, nothing is written. Returns
    the overshoot (dB).

    pedalboard's Limiter (JUCE) adds make-up gain so that its output peaks at 0 dBFS; it is
    driven at ``ceiling - LIMITER_HEADROOM_DB`` and scaled back by that amount, then a final
    trim lands on the target without letting the measured true peak over the ceiling.
    """
    rate, channels = meter.sample_rate, meter.channels
    measured = meter.integrated_lufs()
    if not np.isfinite(measured):  # silence: nothing to normalise
        with SafeWriter(dst, rate, channels, bit_depth, quality, codec, video_from, start) as final:
            _copy_with_gain(pass1, final, 0.0)
            final.commit(finish)
        short = meter.measured_seconds < 0.4  # BS.1770 measures 400 ms blocks
        result.notes.append("shorter than 0.4 s, too short to measure: loudness left unchanged" if short else "silent output: loudness left unchanged")
        return 0.0
    gain_db, over = normalization_gain_db(measured, target, meter.true_peak_dbtp, ceiling)
    source, final_gain = pass1, gain_db
    if over:
        level = ceiling - LIMITER_HEADROOM_DB
        board = pedalboard.Pedalboard([pedalboard.Limiter(threshold_db=level, release_ms=100.0)])
        prime_native(board, rate, channels)
        back = np.float32(10 ** (level / 20))

        def limit(y: np.ndarray) -> np.ndarray:
            return board.process(y, rate, buffer_size=NATIVE_BUFFER_SIZE, reset=False) * back

        with SafeWriter(dst.with_name(f"{dst.stem}.limiter-pass.wav"), rate, channels, 32) as limited:
            temps.append(limited.tmp)
            meter = LoudnessMeter(rate, channels)
            _copy_with_gain(pass1, limited, target - measured, limit, meter)
            limited.close()
        source = limited.tmp
        final_gain, held = normalization_gain_db(meter.integrated_lufs(), target, meter.true_peak_dbtp, ceiling)
        result.peak_limited = True
        result.notes.append(f"limited peaks to reach {target:g} LUFS under {ceiling:g} dBTP")
        measured = meter.integrated_lufs()
        if held:
            result.notes.append(f"loudness {measured + final_gain:.1f} LUFS: held below the {ceiling:g} dBTP ceiling")
    with SafeWriter(dst, rate, channels, bit_depth, quality, codec, video_from, start) as final:
        _copy_with_gain(source, final, final_gain)
        overshoot = 0.0
        if check is not None:  # a lossy codec can push peaks up by a few dB: look before it is committed
            final.close()
            overshoot, keep = check(final.tmp)
            if overshoot > 0.05 and not keep:
                final.abort()
                return overshoot
        final.commit(finish)
    result.gain_db = gain_db
    result.loudness_lufs = measured + final_gain
    result.clipped_samples = final.clipped
    return overshoot


def _normalize_with_codec_headroom(pass1, dst, meter, target, ceiling, bit_depth, result, temps, finish, quality, codec, video_from=None, start=0.0) -> None:
    """``_normalize_loudness``; for a lossy output whose decoded true peak the encoder pushed over
    the ceiling (AAC at 70 kbps: +1.7 dB on a podcast here), again with the limiter that much lower,
    so the loudness target is still met and the file as players decode it stays under the ceiling."""
    lossy = lossy_output(dst, codec)
    notes, effective, attempts = list(result.notes), ceiling, 4
    for attempt in range(attempts):
        result.notes = list(notes)
        last = attempt == attempts - 1
        check = (lambda tmp, last=last: (_decoded_true_peak(tmp) - ceiling, last)) if lossy else None
        overshoot = _normalize_loudness(pass1, dst, meter, target, effective, bit_depth, result, temps, finish, quality, codec, check, video_from, start)
        if overshoot <= 0.05:
            break
        if not last:
            effective = round(effective - overshoot - 0.2, 1)
    kind = dst.suffix.lstrip(".").upper()
    if overshoot > 0.05:
        result.notes.append(f"decoded true peak {ceiling + overshoot:.1f} dBTP, over the {ceiling:g} dBTP ceiling: {kind} at this bit rate overshoots peaks; a higher --bitrate-kbps or a lower --true-peak-dbtp helps")
    elif effective < ceiling:
        result.notes.append(f"{kind} encoding overshoots peaks: limited to {effective:.1f} dBTP before encoding, so the decoded file stays under {ceiling:g} dBTP")


def _bytes_needed(dst: Path, frames: int, rate: int, channels: int, bit_depth: int, quality: str | None, codec: str | None, loudness: bool) -> int:
    """Disk a render takes at its peak: the output (a lossy one by its bit rate, PCM by its depth;
    FLAC and ALAC counted as PCM) and, normalising loudness, the 32-bit float passes beside it
    (the first and the limiter's exist at once)."""
    if lossy_output(dst, codec):
        kbps = float(quality.split()[0]) if quality else 500.0  # no rate set: the encoder's best, at most 500 kbps
        out = int(frames / rate * kbps * 125 * 1.1) + (1 << 16)
    else:
        out = frames * channels * (bit_depth // 8)
    return out + (2 * frames * channels * 4 if loudness else 0)


def _decoded_true_peak(path: Path) -> float:
    """The true peak of a file as a player decodes it, dBTP."""
    info = probe(path)
    meter = LoudnessMeter(info.sample_rate, info.channels)
    for chunk in read_chunks(info, int(CHUNK_SECONDS * info.sample_rate)):
        meter.add(chunk)
    return meter.true_peak_dbtp


def render_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    options: RenderOptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> RenderResult:
    """Denoise ``src`` into ``dst``. ``progress(seconds_done)`` is called after each chunk.

    Raises AudioFileError (one line, names the file) for any problem with the input or output;
    on any failure nothing is left at ``dst`` that was not there before.
    """
    options = options or RenderOptions()
    src, dst = Path(src), Path(dst)
    t0 = time.perf_counter()
    info = probe(src)
    if dst.exists() and dst.resolve() == src.resolve():
        raise AudioFileError(dst, "refusing to write onto the input file")
    suffix = dst.suffix.lower()
    codec = None  # the format's own: AAC in an M4A or MP4, Vorbis in an .ogg, Opus in a WebM
    if suffix in (".m4a", ".m4b") and info.codec == "alac":
        codec = "alac"  # an ALAC M4A stays lossless
    elif suffix in (".ogg", ".mkv") and info.codec == "opus":
        codec = "opus"  # a Craig or Discord Opus .ogg stays Opus, and so does a Matroska video's
    like = dst.with_suffix(CODEC_RATES_SUFFIX[codec]) if codec else dst  # whose sample rates and bit rates apply
    video_from = src if info.video and suffix in VIDEO_OUT else None  # a video podcast: its picture copied, its sound cleaned
    start = info.start if video_from is not None else 0.0  # the cleaned sound starts where the original did against the picture
    rate, rate_change_note = output_sample_rate(like, int(options.sample_rate or info.sample_rate), explicit=options.sample_rate is not None)
    channels = int(options.channels or info.channels)
    bit_depth = int(options.bit_depth or max(16, info.bit_depth))  # an 8-bit input is kept as 16
    if bit_depth not in (16, 24, 32):
        raise ParameterError(f"bit depth must be 16, 24 or 32, got {bit_depth!r}")
    bit_depth, depth_note = output_bit_depth(dst, bit_depth, explicit=options.bit_depth is not None)
    kept_kbps = source_kbps(info) if info.lossy and suffix in LOSSY_WRITE and options.bitrate_kbps is None else None
    quality, bitrate_note = output_quality(like, rate, channels, kept_kbps, options.bitrate_kbps)
    _convert_channels(np.zeros((info.channels, 1), np.float32), channels)  # fail early on impossible layouts
    most = MAX_CHANNELS.get(dst.suffix.lower())
    if most and channels > most:
        raise AudioFileError(dst, f"{dst.suffix.lstrip('.').upper()} holds at most {most} channels, and this one would have {channels}: write WAV, or a mono downmix (--channels 1)")
    live, channel_note = None, None
    if channels == 1 and info.channels > 1:  # a downmix leaves a dead input out (it would halve the voice and add its hiss)
        dead = silent_channels(channel_rms_db(info))
        if dead:
            live = [i for i in range(info.channels) if i not in dead]
            channel_note = f"mono from {channel_names(live, info.channels)} alone ({channel_names(dead, info.channels)} {'are' if len(dead) > 1 else 'is'} silent)"
    auto_note = None
    asked_dehum = options.dehum  # auto turns it on too, and says nothing where there is no hum
    from .auto import AUTO

    if options.model == AUTO:
        from .classify import classify_file

        label = classify_file(src).label
        options = options.resolved(label)
        heard = f"mostly {label}" if label else "too short to classify"
        auto_note = f"auto: {heard} -> {options.model}, attenuation limit {options.attenuation_limit_db:g} dB"
    chain, target, ceiling = options.build()
    declip = chain[0] if len(chain) and isinstance(chain[0], Declip) else None
    if declip is not None:  # it runs on the input as it came: resampling or a downmix would ripple the flat tops away
        del chain[0]
    # the level the take clipped at (full scale, or where it was turned down to) and the hum in it: one look at the whole input
    scan_input(([declip] if declip is not None else []) + list(chain), read_chunks(info, int(CHUNK_SECONDS * info.sample_rate)), info.sample_rate)
    frames_out = int(round(info.frames * rate / info.sample_rate))
    headroom = (options.declip or options.level) and target is None  # restored or raised peaks over full scale: the file is turned down to fit them
    two_pass = target is not None or headroom
    check_free_space(dst.parent if dst.parent.exists() else Path("."), _bytes_needed(dst, frames_out, rate, channels, bit_depth, quality, codec, two_pass))

    result = RenderResult(src, dst, info.seconds, 0.0)
    tracks_note = None
    if info.tracks > 1:  # OBS and the like: a mix and each mic on tracks of their own
        others = info.tracks - 1
        rest = "the other one" if others == 1 else f"the other {others}"
        tracks_note = f"the first of {info.tracks} sound tracks cleaned; " + (f"{rest} copied as {'it was' if others == 1 else 'they were'}" if video_from is not None else f"{rest} left out (the {suffix} written holds one)")
    result.notes += [note for note in (auto_note, rate_change_note, depth_note, bitrate_note, channel_note, tracks_note) if note]
    pass1 = dst.with_name(f"{dst.stem}.loudness-pass.wav")
    for name in (dst, pass1, dst.with_name(f"{dst.stem}.limiter-pass.wav")):
        remove_stale_partials(name)
    temps: list[Path] = []

    def finish(tmp: Path) -> None:  # the input's tags, timecode and markers, into the finished output
        result.notes.extend(carry_metadata(src, tmp, dst, rate / info.sample_rate))

    stage1 = SafeWriter(pass1, rate, channels, 32) if two_pass else SafeWriter(dst, rate, channels, bit_depth, quality, codec, video_from, start)
    try:
        pipe = chain.offline_pipeline(rate, channels)
        before = declip.offline_pipeline(info.sample_rate, info.channels) if declip is not None else None
        meter = LoudnessMeter(rate, channels) if two_pass else None
        to_rate = Resampler(info.sample_rate, rate, channels)  # soxr, aligned; identity if equal
        written = 0

        def emit(y: np.ndarray) -> None:
            nonlocal written
            y = y[:, : frames_out - written]
            if meter:
                meter.add(y)
            stage1.write(y)
            written += y.shape[1]

        done, power, clips = 0, np.zeros(info.channels), ClipCounter(info.sample_rate)
        for x in read_chunks(info, int(CHUNK_SECONDS * info.sample_rate)):
            power += np.sum(np.square(x, dtype=np.float64), axis=1)
            clips.add(x)
            done += x.shape[1]
            if before is not None:
                x = before.push(x)
            emit(pipe.push(to_rate(_convert_channels(x, channels, live))))
            if progress:
                progress(done / info.sample_rate)
        if before is not None:
            emit(pipe.push(to_rate(_convert_channels(before.finish(), channels, live))))
        if not to_rate.identity:
            emit(pipe.push(to_rate(np.zeros((channels, 0), np.float32), last=True)))
        emit(pipe.finish())
        if written < frames_out:  # resampling may come out a sample short
            emit(np.zeros((channels, frames_out - written), np.float32))
        if meter is None:
            stage1.commit(finish)
            result.clipped_samples = stage1.clipped
        elif target is None:  # declipped or levelled, no loudness target: down just enough for the peaks over full scale
            stage1.close()
            temps.append(stage1.tmp)
            gain_db = min(0.0, FULL_SCALE_MARGIN_DB - meter.sample_peak_dbfs)
            with SafeWriter(dst, rate, channels, bit_depth, quality, codec, video_from, start) as final:
                _copy_with_gain(stage1.tmp, final, gain_db)
                final.commit(finish)
            result.gain_db, result.clipped_samples = gain_db, final.clipped
            if gain_db < 0.0:
                raised = "restored and raised" if options.declip and options.level else "raised" if options.level else "restored"
                result.notes.append(f"turned down {-gain_db:.1f} dB so the {raised} peaks fit under full scale")
        else:
            stage1.close()
            temps.append(stage1.tmp)
            _normalize_with_codec_headroom(stage1.tmp, dst, meter, float(target), ceiling, bit_depth, result, temps, finish, quality, codec, video_from, start)
    except BaseException:
        stage1.abort()
        raise
    finally:
        for tmp in temps:  # intermediate float files of the loudness passes
            tmp.unlink(missing_ok=True)
    dead = silent_channels(rms_db(power, info.frames)) if channels > 1 else []
    if dead and info.channels == 2:  # kept as it came: say so, as a listener would hear the voice in one ear only
        kept = [i for i in range(2) if i not in dead]
        result.notes.append(f"{channel_names(dead, 2)} is silent (heard in one ear): --channels 1 makes a mono file of {channel_names(kept, 2)}")
    elif dead:  # a multitrack recorder's unused input
        result.notes.append(f"{channel_names(dead, info.channels)} {'are' if len(dead) > 1 else 'is'} silent")
    result.input_clips = clips.finish().count
    levels = [step for step in chain if isinstance(step, Level)]
    if levels and len(levels[0].gains_db):
        gains = levels[0].gains_db
        result.notes.append(f"levelled: voices turned {_signed(float(np.min(gains)))} to {_signed(float(np.max(gains)))} dB (median {_signed(float(np.median(gains)))} dB)")
    dehums = [step for step in chain if isinstance(step, Dehum)]
    if dehums and dehums[0].frequency_hz is None:
        hum = dehums[0].found
        if hum or asked_dehum:
            none = f"too short to look for hum in (it takes {SHORTEST_S:g} s)" if info.seconds < SHORTEST_S else "no mains hum found"
            result.notes.append(f"dehummed: {hum.describe()}, notched" if hum else f"dehum: {none}, nothing notched")
    declips = [declip] if declip is not None else [step for step in chain if isinstance(step, Declip)]
    if declips:
        filled, left, level_db = declips[0].repaired, declips[0].left, declips[0].clip_level_db
        at = f" at {level_db:.1f} dBFS" if level_db < FULL_SCALE_DB - 0.05 else ""
        result.notes.append(f"declipped{at}: {filled} flat top{'s' if filled != 1 else ''} filled in" + (f", {left} left as {'they were' if left != 1 else 'it was'} (longer than {declips[0].max_gap_ms:g} ms, or past prediction)" if left else ""))
    elif result.input_clips:  # a podcaster wants to know which guest's track clipped, and where
        result.notes.append(f"the input {clips.describe()}: a denoiser cannot bring back what was cut off (--declip fills in short flat tops)")
    if result.clipped_samples:
        result.notes.append(f"{result.clipped_samples} samples clipped at full scale")
    result.elapsed = time.perf_counter() - t0
    return result
