"""Live monitoring: mic in, denoised voice out, through sounddevice (PortAudio). No Qt here.

Three threads, joined only by preallocated single-producer/single-consumer rings:

* the **audio callback** (PortAudio's thread) copies the input block into ``in_ring``, copies the
  next output block out of ``out_ring``, counts xruns and times itself. It allocates no audio
  buffers and does no I/O, logging, Qt calls or locking; when the output is not ready it plays
  silence for the missing part and counts a *late* block (the engine later drops as many samples,
  so the latency never creeps up).
* the **engine worker** takes whole device blocks from ``in_ring``, runs the denoiser
  (``RealtimePipeline``, fixed latency), the bypass crossfade, clipping and meters, and writes
  ``out_ring`` and a tap ring (raw + cleaned).
* the **side worker** drains the tap ring: recording (``CrashSafeWav``), the noise classifier, the
  spectrogram frames the GUI draws, and a watchdog that notices a device that stopped.

The output lags the input by ``latency.total_ms``: the model's algorithmic latency (plus
resampling when the device runs at another rate), one device block plus ``safety_ms`` of
buffering between the callback and the worker, and what the device itself reports.
"""

from __future__ import annotations

import errno
import gc
import math
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AudioDeviceError, ModelError, ParameterError, check_range
from .processor import MAX_ATTENUATION_DB

COMMON_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)
BYPASS_FADE_MS = 20.0
DEFAULT_SAFETY_MS = 10.0  # thread wake-ups are late by up to ~5 ms on a busy 2-core machine
CLIP_LEVEL = 0.999  # an input sample at or above this is counted as clipped
HUM_MEMORY = 0.5  # live, each new segment (~11 s) of the mic halves what the hum finder remembers of the earlier ones
MAX_HUM_LINES = 40  # notched at once while monitoring (a grid's drift could otherwise add lines for hours)
WATCHDOG_S = 1.0  # no callback for this long while running = the device stopped
SPEC_FFT = 1024
SPEC_BINS = SPEC_FFT // 2 + 1


def _sd():
    """Import sounddevice lazily (it needs the PortAudio library, not every user has it)."""
    try:
        import sounddevice
    except OSError as e:  # the Python package is there, libportaudio is not
        raise AudioDeviceError(f"PortAudio is not installed ({e}); on Debian/Ubuntu: apt-get install libportaudio2") from None
    except ImportError:
        raise AudioDeviceError("live audio needs the 'sounddevice' package: pip install sounddevice") from None
    return sounddevice


# --------------------------------------------------------------------------- rings


class RingBuffer:
    """Single-producer single-consumer ring of float32 frames, shape (capacity, channels).

    The producer only moves ``_w``, the consumer only ``_r`` (both ever-increasing), so no lock is
    needed under the GIL. ``write``/``read_into`` copy into/out of the preallocated storage.
    """

    def __init__(self, capacity: int, channels: int = 1):
        self.capacity, self.channels = int(capacity), int(channels)
        self._buf = np.zeros((self.capacity, self.channels), np.float32)
        self._w = 0
        self._r = 0

    @property
    def readable(self) -> int:
        return self._w - self._r

    @property
    def writable(self) -> int:
        return self.capacity - (self._w - self._r)

    def write(self, x: np.ndarray) -> int:
        """Copy as much of ``x`` (frames, channels) as fits; returns the number of frames written."""
        n = min(x.shape[0], self.capacity - (self._w - self._r))
        start = self._w % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = x[:first]
        if n > first:
            self._buf[: n - first] = x[first:n]
        self._w += n
        return n

    def write_zeros(self, n: int) -> int:
        n = min(n, self.writable)
        start = self._w % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = 0.0
        if n > first:
            self._buf[: n - first] = 0.0
        self._w += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (frames, channels) from the ring as far as it has frames; returns how many."""
        n = min(out.shape[0], self._w - self._r)
        start = self._r % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if n > first:
            out[first:n] = self._buf[: n - first]
        self._r += n
        return n

    def read(self, n: int) -> np.ndarray:
        """Consumer side, allocating: up to ``n`` frames as a new array (not for the audio callback)."""
        out = np.empty((min(n, self.readable), self.channels), np.float32)
        self.read_into(out)
        return out

    def skip(self, n: int) -> int:
        n = min(n, self.readable)
        self._r += n
        return n


class DelayLine:
    """Delays a mono signal by a fixed number of samples (the dry path for the bypass crossfade)."""

    def __init__(self, delay: int):
        self.delay = int(delay)
        self._buf = np.zeros(self.delay, np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.delay == 0:
            return x
        y = np.concatenate([self._buf, x])
        self._buf = y[len(x) :].copy()
        return y[: len(x)]


# --------------------------------------------------------------------------- recording


class CrashSafeWav:
    """32-bit float mono WAV written as it goes; valid at every moment, even if the process is killed.

    Samples are appended and flushed first; only then does the header grow to cover them (every
    ``header_every_s``). A killed session therefore loses at most that much of its end, never the file.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, header_every_s: float = 0.5):
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self._f = open(self.path, "xb")  # never overwrite a recording
        self.frames = 0
        self._covered = -1
        self._every = max(1, int(header_every_s * sample_rate))
        self._write_header()

    def _write_header(self) -> None:
        data = self.frames * 4
        hdr = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
        hdr += b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, self.sample_rate, self.sample_rate * 4, 4, 32)
        hdr += b"data" + struct.pack("<I", data)
        self._f.seek(0)
        self._f.write(hdr)
        self._f.seek(0, os.SEEK_END)
        self._f.flush()
        self._covered = self.frames

    def write(self, x: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(x, dtype="<f4").tobytes())
        self.frames += len(x)
        if self.frames - self._covered >= self._every:
            self._f.flush()
            self._write_header()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._write_header()
            os.fsync(self._f.fileno())
            self._f.close()


def check_record_folder(folder: str | os.PathLike) -> Path:
    """The folder recordings go to, created if need be; an AudioDeviceError naming it when it
    cannot be (checked before a stream starts, so that a bad --record fails before any audio)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
    except OSError as e:
        raise AudioDeviceError(f"{folder}: cannot record there ({e.strerror or e})") from None
    return folder


def _unique_stem(folder: Path) -> str:
    stem = "noisenil-live-" + time.strftime("%Y%m%d-%H%M%S")
    candidate, k = stem, 1
    while any((folder / f"{candidate}-{kind}.wav").exists() for kind in ("raw", "clean")):
        k += 1
        candidate = f"{stem}-{k}"
    return candidate


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float

    def __str__(self) -> str:
        return f"{self.index}: {self.name} [{self.hostapi}] (in {self.max_input_channels}, out {self.max_output_channels}, {self.default_sample_rate:g} Hz)"


_closing: list[threading.Thread] = []  # streams of failed devices still being closed


def rescan_devices() -> None:
    """Make PortAudio look again (after a device was plugged in or an audio server restarted).

    Closes every open stream of this process. Refuses (rather than crash inside PortAudio) while
    the stream of a failed device is still being closed."""
    sd = _sd()
    for t in list(_closing):
        t.join(timeout=3.0)
        if t.is_alive():
            raise AudioDeviceError("the failed audio device has not let go of its stream yet; try again in a moment")
        _closing.remove(t)
    sd._terminate()
    sd._initialize()


def list_devices(kind: str | None = None) -> list[DeviceInfo]:
    """All devices (``kind`` 'input' or 'output' keeps those with channels of that kind)."""
    sd = _sd()
    apis = sd.query_hostapis()
    out = []
    for i, d in enumerate(sd.query_devices()):
        info = DeviceInfo(
            i, d["name"], apis[d["hostapi"]]["name"], d["max_input_channels"], d["max_output_channels"], d["default_samplerate"]
        )
        if kind == "input" and not info.max_input_channels or kind == "output" and not info.max_output_channels:
            continue
        out.append(info)
    return out


def find_device(spec: str | int | None, kind: str) -> DeviceInfo:
    """Resolve a device index, exact name or unique name fragment (None = the system default)."""
    devices = list_devices(kind)
    valid = [f"{d.index}: {d.name}" for d in devices]
    if not devices:
        raise AudioDeviceError(f"no {kind} audio device found (is an audio server running?)")
    if spec is None or spec == "":
        sd = _sd()
        default = sd.default.device[0 if kind == "input" else 1]
        if default is None or default < 0:
            return devices[0]
        spec = int(default)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        for d in devices:
            if d.index == idx:
                return d
        raise AudioDeviceError(f"no {kind} device with index {idx}; {kind} devices: {'; '.join(valid)}")
    exact = [d for d in devices if d.name == spec]
    if exact:
        return exact[0]
    partial = [d for d in devices if spec.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    what = "matches several" if partial else "matches no"
    raise AudioDeviceError(f"{kind} device {spec!r} {what} {kind} device; {kind} devices: {'; '.join(valid)}")


def supported_rates(device: DeviceInfo, kind: str, channels: int = 1) -> list[int]:
    sd = _sd()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    rates = []
    for r in COMMON_RATES:
        try:
            check(device=device.index, channels=channels, samplerate=r)
            rates.append(r)
        except Exception:
            pass
    return rates


# --------------------------------------------------------------------------- settings and figures


@dataclass
class LiveConfig:
    """What to open. Devices: index, name or name fragment (None = default)."""

    input_device: str | int | None = None
    output_device: str | int | None = None
    sample_rate: int | None = None  # None = the input device's default
    block_size: int | None = None  # device frames per callback; None = 10 ms
    input_channel: int = 1  # which input channel is the mic (1-based)
    output_channels: int = 2  # mono mic to both ears; 1 for a mono output
    model: str | None = None  # denoiser (None = the default)
    attenuation_limit_db: float = MAX_ATTENUATION_DB
    mix: float = 1.0
    safety_ms: float = DEFAULT_SAFETY_MS  # extra buffering: the worker may run this late without a dropout
    classify: bool = True
    dehum: bool = False  # notch out mains hum once it is found in the mic (the first after ~11 s)


@dataclass
class Latency:
    algorithmic_ms: float  # model + resampling, from the engine
    buffer_ms: float  # callback <-> worker buffering (one block + safety)
    input_device_ms: float  # as the device reports
    output_device_ms: float

    @property
    def total_ms(self) -> float:
        return self.algorithmic_ms + self.buffer_ms + self.input_device_ms + self.output_device_ms

    def __str__(self) -> str:
        return (
            f"{self.total_ms:.1f} ms (model {self.algorithmic_ms:.1f} + buffer {self.buffer_ms:.1f} "
            f"+ device {self.input_device_ms + self.output_device_ms:.1f})"
        )


@dataclass
class LiveStats:
    """A snapshot for displays; levels in dBFS."""

    state: str
    error: str | None
    seconds: float
    callbacks: int
    xruns: int  # device xruns + late blocks + input ring overruns
    device_xruns: int  # xruns the device reported (one event may flag both directions)
    input_overflows: int
    output_underflows: int
    late_blocks: int  # blocks the engine was not ready for (the device played silence)
    ring_overruns: int  # input blocks dropped because the engine had stalled
    clipped_input: int  # samples at or above full scale
    clipped_output: int
    in_peak_db: float
    in_rms_db: float
    out_peak_db: float
    out_rms_db: float
    gain_reduction_db: float
    noise_class: str | None
    noise_probability: float
    hum: str | None = None  # the mains hum found in the mic so far (notched while dehum is on)
    hum_checked: bool = False  # a first segment (~11 s) of the mic has been looked at for hum
    recording: list[str] = field(default_factory=list)
    record_dropped: int = 0
    latency: Latency | None = None


def _db(power_or_amp: float, power: bool = False) -> float:
    v = float(power_or_amp)
    if v <= 1e-12:
        return -120.0
    return (10.0 if power else 20.0) * math.log10(v)


# --------------------------------------------------------------------------- the engine


class LiveEngine:
    """Mic -> denoiser -> headphones, with meters, bypass, recording and failure reporting."""

    def __init__(self, config: LiveConfig | None = None):
        from .effects import Denoise

        self.config = c = config or LiveConfig()
        check_range("safety_ms", c.safety_ms, 0.0, 1000.0)
        if c.input_channel < 1:
            raise ParameterError(f"input_channel is 1-based, got {c.input_channel!r}")
        if c.output_channels not in (1, 2):
            raise ParameterError(f"output_channels must be 1 or 2, got {c.output_channels!r}")
        self.denoise = Denoise(c.model, c.attenuation_limit_db, c.mix)
        if not self.denoise.streaming:
            from .registry import DENOISERS

            live = [n for n in DENOISERS.names() if DENOISERS.get(n).streaming]
            raise ModelError(
                f"{self.denoise.model!r} is an offline model (it looks {self.denoise.manifest.latency_ms:.0f} ms ahead): "
                f"live monitoring needs a streaming one: {', '.join(live)}"
            )
        self.state = "stopped"
        self.error: str | None = None
        self.input: DeviceInfo | None = None
        self.output: DeviceInfo | None = None
        self.sample_rate = 0
        self.block_size = 0
        self._stream = None
        self._threads: list[threading.Thread] = []
        self._recorders: list[CrashSafeWav] = []
        self._record_swap: list | None = None  # recorders handed to the side thread
        self._running = False
        self.bypass = False
        self.dehum = c.dehum  # notch out the hum found in the mic (switches at the next block)
        self.hum = None  # what was found (dehum.Hum), on or off
        self._hum_segments = 0  # segments of the mic looked at
        self._notch = self._next_notch = None
        self.on_failure = None  # called (from the side thread) with the message when the device fails
        self.cb_times_ns = np.zeros(1 << 16, np.int64)  # callback durations, a ring
        self.latency: Latency | None = None
        self._switch: float | None = None  # Python's switch interval before streaming, while streaming
        self._reset_counters()

    # ---------------------------------------------------------------- controls
    @property
    def attenuation_limit_db(self) -> float:
        return self.denoise.attenuation_limit_db

    @attenuation_limit_db.setter
    def attenuation_limit_db(self, value: float) -> None:
        self.denoise.attenuation_limit_db = value  # reaches the stream at its next frame, click-free

    @property
    def mix(self) -> float:
        return self.denoise.mix

    @mix.setter
    def mix(self, value: float) -> None:
        self.denoise.mix = value

    # ---------------------------------------------------------------- set-up
    def _open_devices(self):
        sd = _sd()
        c = self.config
        self.input = find_device(c.input_device, "input")
        self.output = find_device(c.output_device, "output")
        if c.input_channel > self.input.max_input_channels:
            raise AudioDeviceError(
                f"input device {self.input.name!r} has {self.input.max_input_channels} channel(s); "
                f"input_channel {c.input_channel} does not exist"
            )
        in_ch = c.input_channel
        out_ch = min(c.output_channels, self.output.max_output_channels)
        rate = int(c.sample_rate or self.input.default_sample_rate)
        for dev, kind, ch in ((self.input, "input", in_ch), (self.output, "output", out_ch)):
            check = sd.check_input_settings if kind == "input" else sd.check_output_settings
            try:
                check(device=dev.index, channels=ch, samplerate=rate)
            except Exception:
                offered = supported_rates(dev, kind, ch)
                raise AudioDeviceError(
                    f"{kind} device {dev.name!r} cannot run at {rate} Hz; it offers: "
                    f"{', '.join(map(str, offered)) or 'no common rate'}"
                ) from None
        block = int(c.block_size or round(rate * 0.01))
        if not 16 <= block <= 16384:
            raise ParameterError(f"block_size must be in [16, 16384] frames, got {block!r}")
        return rate, block, in_ch, out_ch

    def _prepare(self, rate: int, block: int, in_ch: int) -> None:
        """Allocate every buffer for a stream (device or virtual) and zero the counters."""
        self.sample_rate, self.block_size = rate, block
        self.pipeline = self.denoise.open_stream(rate, 1, block_size=block)
        self._dry = DelayLine(self.pipeline.latency_samples)
        self._prefill = block + int(round(self.config.safety_ms * rate / 1000))
        cap = max(4 * block + self._prefill, rate)  # one second at least
        self.in_ring = RingBuffer(cap, 1)
        self.out_ring = RingBuffer(cap, 1)
        self.tap_ring = RingBuffer(10 * rate, 2)  # raw, cleaned: ten seconds for the side thread
        self._scratch_out = np.zeros((cap, 1), np.float32)
        self.spec_ring = RingBuffer(512, 2 * SPEC_BINS)  # log-power frames, before | after
        self._spec_tail = np.zeros((0, 2), np.float32)
        self._spec_window = np.hanning(SPEC_FFT).astype(np.float32)
        self.spec_hop = max(1, rate // 100)
        self._in_col = slice(in_ch - 1, in_ch)
        from .dehum import HumFinder

        self._hum_finder = HumFinder(rate, memory=HUM_MEMORY)  # fed the raw mic by the side thread
        self._hum_segments = 0
        self._hum_lines: list[tuple[int, float]] = []
        self._notch = self._next_notch = None  # notches in use (engine worker), and new ones handed over (side thread)
        self.hum = None
        self._reset_counters()
        self.out_ring.write_zeros(self._prefill)

    def _set_latency(self, input_device_s: float, output_device_s: float) -> None:
        rate = self.sample_rate
        self.latency = Latency(
            1000.0 * self.pipeline.latency_samples / rate, 1000.0 * self._prefill / rate, 1000.0 * input_device_s, 1000.0 * output_device_s
        )

    def _reset_counters(self) -> None:
        self.cb_times_ns[:] = 0
        self._callbacks = 0
        self._frames = 0
        self._input_overflows = 0
        self._output_underflows = 0
        self._ring_overruns = 0
        self._device_xruns = 0  # callbacks that came with an overflow and/or underflow flag
        self._late_blocks = 0
        self._late_samples = 0  # written by the callback only
        self._late_dropped = 0  # written by the worker only
        self._clipped_in = 0
        self._clipped_out = 0
        self._wet = 1.0
        self._in_peak = self._out_peak = 0.0
        self._in_pow = self._out_pow = self._dry_pow = 1e-12
        self.noise_class: str | None = None
        self.noise_probability = 0.0
        self._record_dropped = 0
        self._last_callback_at = time.monotonic()

    def start(self) -> None:
        """Open the devices and start streaming. Raises ``AudioDeviceError`` with a one-line reason."""
        if self.state == "running":
            return
        sd = _sd()
        rate, block, in_ch, out_ch = self._open_devices()
        self._prepare(rate, block, in_ch)
        self.error = None
        self._classifier = None
        if self.config.classify:
            from .classify import NoiseClassifierStream

            self._classifier = NoiseClassifierStream(sample_rate=rate)
        self._warm_up()
        gc.collect()
        gc.freeze()  # what exists now is never scanned again: collections stay short while streaming
        self._running = True
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)  # the callback waits for the GIL at most this long
        try:
            self._stream = sd.Stream(
                samplerate=rate,
                blocksize=block,
                device=(self.input.index, self.output.index),
                channels=(in_ch, out_ch),
                dtype="float32",
                latency="low",
                callback=self._callback,
                finished_callback=self._finished,
            )
        except Exception as e:
            self._running = False
            sys.setswitchinterval(self._switch)
            self._switch = None
            gc.unfreeze()
            raise AudioDeviceError(f"cannot open {self.input.name!r} -> {self.output.name!r} at {rate} Hz: {e}") from None
        self._set_latency(*self._stream.latency)
        self._threads = [
            threading.Thread(target=self._guard(self._engine_loop), name="noisenil-live-engine", daemon=True),
            threading.Thread(target=self._guard(self._side_loop), name="noisenil-live-side", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.state = "running"
        self._last_callback_at = time.monotonic()
        self._stream.start()

    def _warm_up(self) -> None:
        """Run every model and FFT size once before the device starts: first runs are slow
        (onnxruntime allocates its arenas, filterbanks are built) and would hold up the callback."""
        rate, block = self.sample_rate, self.block_size
        noise = (0.01 * np.random.default_rng(0).standard_normal(2 * rate)).astype(np.float32)
        for i in range(0, 20 * block, block):
            self.pipeline.process(noise[None, i : i + block])
        self.pipeline.reset()  # the real stream starts from silence
        self._spectrogram(np.stack([noise, noise], axis=1)[: 4 * SPEC_FFT])
        self.spec_ring.skip(self.spec_ring.readable)
        self._spec_tail = np.zeros((0, 2), np.float32)
        if self._classifier is not None:
            self._classifier.push(noise[None])
            self._classifier.reset()

    def stop(self) -> None:
        """Stop streaming; recordings are closed (complete) before this returns."""
        self._running = False
        stream, self._stream = self._stream, None
        if stream is not None:
            failed = self.state == "failed"

            def close():
                try:
                    stream.abort() if failed else stream.stop()
                    stream.close()
                except Exception:
                    pass  # a device that already failed cannot be stopped more

            # A device that died may never answer: do not hang the app on it.
            closer = threading.Thread(target=close, name="noisenil-live-close", daemon=True)
            closer.start()
            closer.join(timeout=3.0)
            if closer.is_alive():
                _closing.append(closer)
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        self._close_recorders()
        if self._switch is not None:
            sys.setswitchinterval(self._switch)
            self._switch = None
            gc.unfreeze()
        if self.state != "failed":
            self.state = "stopped"

    def restart(self) -> None:
        """After a failure (or to pick up a re-plugged device): rescan the devices and start again."""
        self.stop()
        rescan_devices()
        self.state = "stopped"
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------------- recording
    def start_recording(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Record the raw mic and the cleaned signal into ``folder``; returns the two paths.

        The side thread owns the open files: while streaming, the new pair is handed over to it."""
        folder = check_record_folder(folder)
        try:
            stem = _unique_stem(folder)
            rate = self.sample_rate or int(self.config.sample_rate or 48000)
            recs = [CrashSafeWav(folder / f"{stem}-{kind}.wav", rate) for kind in ("raw", "clean")]
        except OSError as e:
            raise AudioDeviceError(f"{folder}: cannot record there ({e.strerror or e})") from None
        self._hand_over(recs)
        return recs[0].path, recs[1].path

    def stop_recording(self) -> None:
        """Close the recordings (complete and valid) before returning."""
        self._hand_over([])

    def _hand_over(self, recs: list) -> None:
        if self._running and any(t.is_alive() for t in self._threads):
            self._record_swap = recs
            deadline = time.monotonic() + 2.0
            while self._record_swap is not None and time.monotonic() < deadline:
                time.sleep(0.005)
            if self._record_swap is None:
                return
            self._record_swap = None  # the side thread is stuck; take over
        self._close_recorders()
        self._recorders = recs

    def _close_recorders(self) -> None:
        recs, self._recorders = self._recorders, []
        for r in recs:
            r.close()

    # ---------------------------------------------------------------- the audio callback
    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        t0 = time.perf_counter_ns()
        if status:
            over, under = status.input_overflow, status.output_underflow
            if over:
                self._input_overflows += 1
            if under:
                self._output_underflows += 1
            if over or under:
                self._device_xruns += 1
        if self.in_ring.write(indata[:, self._in_col]) < frames:
            self._ring_overruns += 1
        scratch = self._scratch_out[:frames]
        got = self.out_ring.read_into(scratch)
        if got < frames:
            scratch[got:] = 0.0
            self._late_blocks += 1
            self._late_samples += frames - got
        outdata[:] = scratch
        self._frames += frames
        self.cb_times_ns[self._callbacks & 0xFFFF] = time.perf_counter_ns() - t0
        self._callbacks += 1
        self._last_callback_at = time.monotonic()

    def _finished(self) -> None:
        if self._running:
            self._fail("the audio stream stopped (device unplugged or audio server gone)")

    def _fail(self, message: str) -> None:
        if self.state == "failed":
            return
        self.error = message
        self.state = "failed"
        self._running = False
        cb = self.on_failure
        if cb is not None:
            cb(message)

    def _guard(self, loop):
        def run():
            try:
                loop()
            except Exception as e:  # a bug or a model error: surface it, never die silently
                self._fail(f"live engine error: {type(e).__name__}: {e}")

        return run

    # ---------------------------------------------------------------- engine worker
    def _engine_loop(self) -> None:
        block = self.block_size
        x = np.zeros((block, 1), np.float32)
        nap = 0.6 * block / self.sample_rate  # after a block, the next one is at least this far away
        while self._running:
            if self.in_ring.readable >= block:
                self.in_ring.read_into(x)
                self.process_block(x[:, 0])
                if self.in_ring.readable < block:
                    time.sleep(nap)
            else:
                time.sleep(0.0005)

    def process_block(self, x: np.ndarray) -> None:
        """One device block through the denoiser into the output ring (the worker's whole job)."""
        n = len(x)
        if self._next_notch is not None:  # the side thread found (more) hum: notch it from this block on
            new, old = self._next_notch, self._notch
            if old is not None and len(old.sos) <= len(new.sos) and np.array_equal(new.sos[: len(old.sos)], old.sos):
                new._zi[: len(old.sos)] = old._zi  # the lines notched already go on without a restart
            self._notch, self._next_notch = new, None
        notched = self._notch.process_frame(x) if self._notch is not None and self.dehum else x
        y = self.pipeline.process(notched[None])[0]
        dry = self._dry(x)
        target = 0.0 if self.bypass else 1.0
        if self._wet != target or target != 1.0:
            step = 1000.0 / (BYPASS_FADE_MS * self.sample_rate)
            ramp = self._wet + np.sign(target - self._wet) * step * np.arange(1, n + 1)
            ramp = np.clip(ramp, 0.0, 1.0)
            self._wet = float(ramp[-1])
            y = ramp * y + (1.0 - ramp) * dry
        y = y.astype(np.float32, copy=False)
        a = np.abs(x)
        self._clipped_in += int(np.count_nonzero(a >= CLIP_LEVEL))
        peak_out = float(np.abs(y).max()) if n else 0.0
        if peak_out > 1.0:
            self._clipped_out += int(np.count_nonzero(np.abs(y) > 1.0))
            y = np.clip(y, -1.0, 1.0)
        # meters: peaks held until read, powers smoothed over ~300 ms
        self._in_peak = max(self._in_peak, float(a.max()) if n else 0.0)
        self._out_peak = max(self._out_peak, peak_out)
        k = math.exp(-n / (0.3 * self.sample_rate))
        self._in_pow = k * self._in_pow + (1 - k) * float(np.mean(x.astype(np.float64) ** 2))
        self._dry_pow = k * self._dry_pow + (1 - k) * float(np.mean(dry.astype(np.float64) ** 2))
        self._out_pow = k * self._out_pow + (1 - k) * float(np.mean(y.astype(np.float64) ** 2))
        if self.tap_ring.write(np.stack([x, y], axis=1)) < n:  # the side thread is stuck (slow disk)
            self._record_dropped += n
        out = y
        debt = self._late_samples - self._late_dropped
        if debt > 0:  # the callback played silence for these: drop as many so the latency stays fixed
            d = min(debt, n)
            out = out[d:]
            self._late_dropped += d
        self.out_ring.write(out[:, None])

    # ---------------------------------------------------------------- side worker
    def _side_loop(self) -> None:
        while self._running:
            time.sleep(0.02)
            self._drain_taps()
            if self._running and time.monotonic() - self._last_callback_at > WATCHDOG_S:
                self._fail(f"no audio from {self.input.name!r} for {WATCHDOG_S:g} s (device unplugged or audio server gone)")
        self._drain_taps()

    def _drain_taps(self) -> None:
        n = self.tap_ring.readable
        taps = self.tap_ring.read(n) if n else None
        if taps is not None:
            for rec, col in zip(self._recorders, (0, 1)):
                try:
                    rec.write(taps[:, col])
                except OSError as e:
                    self.error = f"recording stopped: {rec.path}: {e.strerror or e}"
                    self._recorders = []
                    break
        swap = self._record_swap
        if swap is not None:
            self._close_recorders()
            self._recorders = swap
            self._record_swap = None
        if taps is None:
            return
        self._listen_for_hum(taps[:, 0])
        if self._classifier is not None:
            if self._classifier.push(taps[:, 0][None]):
                i = int(np.argmax(self._classifier.smoothed))
                self.noise_class = self._classifier.labels[i]
                self.noise_probability = float(self._classifier.smoothed[i])
        self._spectrogram(taps)

    def _listen_for_hum(self, raw: np.ndarray) -> None:
        """The long-term spectrum of the mic, a segment (~11 s) at a time; new notches when the hum found changes."""
        finder = self._hum_finder
        finder.add(raw[None])
        if finder.segments == self._hum_segments:
            return
        self._hum_segments = finder.segments
        hum = finder.result()
        if hum is None:  # none (yet), or none lately: what was found stays notched
            return
        self.hum = hum
        lines = list(self._hum_lines)  # lines are added, never dropped: a hum that stops costs its notches little
        for k, hz, _ in hum.harmonics:
            if len(lines) < MAX_HUM_LINES and not any(abs(hz - known) < 0.2 for _, known in lines):
                lines.append((k, hz))
        if len(lines) == len(self._hum_lines):
            return
        from .dehum import BANDWIDTH_HZ, NotchProcessor, notch_sos

        self._hum_lines = lines  # new sections go last: the engine carries the earlier ones' state over
        self._next_notch = NotchProcessor(notch_sos(lines, BANDWIDTH_HZ, self.sample_rate), self.block_size)

    def _spectrogram(self, taps: np.ndarray) -> None:
        buf = np.concatenate([self._spec_tail, taps]) if len(self._spec_tail) else taps
        hop, win = self.spec_hop, self._spec_window
        count = 0 if len(buf) < SPEC_FFT else 1 + (len(buf) - SPEC_FFT) // hop
        if count:
            idx = np.arange(SPEC_FFT)[None, :] + hop * np.arange(count)[:, None]
            frames = buf[idx] * win[None, :, None]  # (count, fft, 2)
            power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 / (win**2).sum()
            logp = 10 * np.log10(power + 1e-12).astype(np.float32)  # (count, bins, 2)
            rows = np.concatenate([logp[:, :, 0], logp[:, :, 1]], axis=1)
            if self.spec_ring.writable < count:
                self.spec_ring.skip(count - self.spec_ring.writable)  # the GUI is not looking: keep the newest
            self.spec_ring.write(rows)
        self._spec_tail = buf[count * hop :].copy()

    def read_spectrogram(self) -> tuple[np.ndarray, np.ndarray]:
        """New spectrogram frames since the last call: (before, after), each (frames, SPEC_BINS) dB."""
        rows = self.spec_ring.read(self.spec_ring.readable)
        return rows[:, :SPEC_BINS], rows[:, SPEC_BINS:]

    # ---------------------------------------------------------------- figures
    def stats(self, reset_peaks: bool = True) -> LiveStats:
        s = LiveStats(
            state=self.state,
            error=self.error,
            seconds=self._frames / self.sample_rate if self.sample_rate else 0.0,
            callbacks=self._callbacks,
            xruns=self._device_xruns + self._late_blocks + self._ring_overruns,
            device_xruns=self._device_xruns,
            ring_overruns=self._ring_overruns,
            input_overflows=self._input_overflows,
            output_underflows=self._output_underflows,
            late_blocks=self._late_blocks,
            clipped_input=self._clipped_in,
            clipped_output=self._clipped_out,
            in_peak_db=_db(self._in_peak),
            in_rms_db=_db(self._in_pow, power=True),
            out_peak_db=_db(self._out_peak),
            out_rms_db=_db(self._out_pow, power=True),
            gain_reduction_db=max(0.0, _db(self._dry_pow / max(self._out_pow, 1e-12), power=True)),
            noise_class=self.noise_class,
            noise_probability=self.noise_probability,
            hum=self.hum.describe() if self.hum else None,
            hum_checked=self._hum_segments > 0,
            recording=[str(r.path) for r in self._recorders],
            record_dropped=self._record_dropped,
            latency=self.latency,
        )
        if reset_peaks:
            self._in_peak = self._out_peak = 0.0
        return s

    def callback_times_us(self) -> np.ndarray:
        """Durations of the recorded callbacks (the last 65,536), in microseconds."""
        n = min(self._callbacks, len(self.cb_times_ns))
        return self.cb_times_ns[:n] / 1000.0


# --------------------------------------------------------------------------- without a device


class VirtualDevice:
    """Drives a ``LiveEngine``'s callback from arrays instead of a sound card, as fast as the worker
    keeps up: for tests, benchmarks and machines without audio. Same code path as a real stream,
    minus PortAudio."""

    def __init__(self, engine: LiveEngine, sample_rate: int = 48000, block_size: int | None = None, out_channels: int = 2):
        self.engine = engine
        c = engine.config
        self.block = int(block_size or c.block_size or round(sample_rate * 0.01))
        engine._prepare(sample_rate, self.block, 1)
        engine._classifier = None
        engine._set_latency(0.0, 0.0)
        self._indata = np.zeros((self.block, 1), np.float32)
        self._outdata = np.zeros((self.block, out_channels), np.float32)

    def run(self, x: np.ndarray, on_block=None) -> np.ndarray:
        """Feed mono ``x`` (whole blocks; a partial last block is dropped) and return the output (n, channels)."""
        e = self.engine
        n_blocks = len(x) // self.block
        out = np.zeros((n_blocks * self.block, self._outdata.shape[1]), np.float32)
        for b in range(n_blocks):
            self._indata[:, 0] = x[b * self.block : (b + 1) * self.block]
            e._callback(self._indata, self._outdata, self.block, None, None)
            out[b * self.block : (b + 1) * self.block] = self._outdata
            # the worker's part, in line: one block in, one block out
            while e.in_ring.readable >= self.block:
                e.process_block(e.in_ring.read(self.block)[:, 0])
            e._drain_taps()
            if on_block is not None:
                on_block(b)
        return out


__all__ = [
    "AudioDeviceError",
    "CrashSafeWav",
    "DeviceInfo",
    "LiveConfig",
    "LiveEngine",
    "LiveStats",
    "Latency",
    "RingBuffer",
    "VirtualDevice",
    "find_device",
    "list_devices",
    "supported_rates",
]
