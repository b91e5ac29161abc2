"""pedalboard-compatible effects backed by NoiseNil's engine.

They follow pedalboard's ``Plugin`` contract: ``process(input_array, sample_rate,
buffer_size=8192, reset=True)``, ``__call__`` as an alias, ``reset()``; float32 audio shaped
``(channels, samples)`` (1-D mono accepted and returned as 1-D).

* ``reset=True`` (the default): the whole buffer is one piece of audio. The output has the
  input's length and is latency-compensated: it lines up with the input sample for sample.
* ``reset=False``: streaming. State carries over to the next call, and the output is delayed by
  ``streaming_latency_samples(sample_rate)`` (as pedalboard's own plugins with latency are).
"""

from __future__ import annotations

import numpy as np

from .engine import OfflinePipeline, RealtimePipeline, check_sample_rate
from .errors import ParameterError, check_range
from .adapters import make_processor
from .processor import DC_CUTOFF_HZ, MAX_ATTENUATION_DB
from .registry import DEFAULT_DENOISER, DENOISERS


def as_channels_first(input_array) -> tuple[np.ndarray, str]:
    """(channels, samples) float32 view of the input, and how to give the output back ('1d', 'cf', 'cl')."""
    x = np.asarray(input_array)
    if x.dtype.kind not in "fiu":
        raise ParameterError(f"input_array must hold numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        return x[np.newaxis, :].astype(np.float32, copy=False), "1d"
    if x.ndim != 2:
        raise ParameterError(f"input_array must be 1-D or 2-D (channels, samples), got shape {x.shape}")
    if x.shape[0] > 16 and x.shape[1] <= 16:  # unambiguous (samples, channels)
        return np.ascontiguousarray(x.T, dtype=np.float32), "cl"
    return x.astype(np.float32, copy=False), "cf"


def restore_layout(y: np.ndarray, layout: str) -> np.ndarray:
    if layout == "1d":
        return y[0]
    return np.ascontiguousarray(y.T) if layout == "cl" else y


def check_buffer_size(buffer_size) -> int:
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
        raise ParameterError(f"buffer_size must be a positive integer, got {buffer_size!r}")
    return int(buffer_size)


def run_offline(pipeline, x: np.ndarray, buffer_size: int) -> np.ndarray:
    parts = [pipeline.push(x[:, i : i + buffer_size]) for i in range(0, x.shape[1], buffer_size)]
    parts.append(pipeline.finish())
    return np.concatenate(parts, axis=1)


def feed(scanner, chunks):
    """Every chunk to a scanner (``add``), then its ``finish()``."""
    for chunk in chunks:
        scanner.add(chunk)
    return scanner.finish()


class StreamingEffect:
    """Shared plumbing: layout handling, buffer splitting, offline vs. streaming pipelines."""

    #: the rate its frame processors run at; None: the host's (``_rate`` says which, once made)
    model_rate: int | None = None
    #: corner of the DC blocker in front of the frame processors; None: none
    dc_cutoff_hz: float | None = None
    remove_dc = False
    #: it looks at a whole input before it runs (``scanner``: Declip's clip level, Dehum's hum)
    scans_input = False

    def __init__(self):
        self._stream: RealtimePipeline | None = None

    def scanner(self, sample_rate: int):
        """Something to show a whole input to before it runs (``add(chunk)``, then ``finish()``,
        which sets what the effect found); None where there is nothing to find."""
        return None

    def scan(self, chunks, sample_rate: int):
        """Show a whole input (an iterable of (channels, n) chunks) to ``scanner``; returns what
        ``finish()`` found, None where there is nothing to find."""
        scanner = self.scanner(sample_rate)
        return None if scanner is None else feed(scanner, chunks)

    def _make_processors(self, channels: int) -> list:
        raise NotImplementedError

    def _make(self, cls, sample_rate: int, channels: int, **kwargs):
        self._rate = self.model_rate or sample_rate
        pipeline = cls(self._make_processors, sample_rate, self._rate, channels, dc_cutoff_hz=self.dc_cutoff_hz, **kwargs)
        if self.dc_cutoff_hz:
            pipeline.adapter.remove_dc = self.remove_dc
        return pipeline

    def reset(self) -> None:
        """Forget all streaming state (the next ``reset=False`` call starts from silence)."""
        self._stream = None

    def offline_pipeline(self, sample_rate: int, channels: int) -> OfflinePipeline:
        """Aligned chunked rendering: ``push(chunk)`` any number of times, then ``finish()``."""
        return self._make(OfflinePipeline, check_sample_rate(sample_rate), channels)

    def streaming_latency_samples(self, sample_rate: float) -> int:
        """Delay of the output behind the input with ``reset=False``, in samples at ``sample_rate``."""
        rate = check_sample_rate(sample_rate)
        if self._stream is not None and self._stream.host_rate == rate:
            return self._stream.latency_samples
        return self._make(RealtimePipeline, rate, 1).latency_samples

    def open_stream(self, sample_rate: float, channels: int = 1, block_size: int | None = None) -> RealtimePipeline:
        """Start a fixed-latency stream (as ``reset=False`` does) and return it.

        With ``block_size`` the caller promises blocks of exactly that many samples (a live audio
        device); at the model's rate, with whole hops per block, the stream then adds no hop buffering.
        Settings changed on the effect reach this stream at its next frame.
        """
        rate = check_sample_rate(sample_rate)
        self._stream = self._make(RealtimePipeline, rate, channels, block_size=block_size)
        return self._stream

    def process(self, input_array, sample_rate: float, buffer_size: int = 8192, reset: bool = True) -> np.ndarray:
        rate = check_sample_rate(sample_rate)
        size = check_buffer_size(buffer_size)
        x, layout = as_channels_first(input_array)
        if not np.all(np.isfinite(x)):
            raise ParameterError("input_array contains NaN or Inf samples")
        channels = x.shape[0]
        if reset:
            self.scan([x], rate)  # the whole input, before it runs: a level or hum to find
            self._stream = None
            y = run_offline(self.offline_pipeline(rate, channels), x, size)
        else:
            s = self._stream
            if s is None or (s.host_rate, s.channels) != (rate, channels) or s.block_size is not None:
                self._stream = self._make(RealtimePipeline, rate, channels)
            parts = [self._stream.process(x[:, i : i + size]) for i in range(0, x.shape[1], size)]
            y = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
        return restore_layout(y.astype(np.float32, copy=False), layout)

    __call__ = process


class Denoise(StreamingEffect):
    """Remove noise with a registered denoiser.

    model: a registered name (``noisenil models``), a path to a manifest or to the ``.onnx`` beside
    one; None = the default.
    attenuation_limit_db: how far noise may be pushed down, 0..100 dB (100 = no limit).
    mix: dry/wet, 0 (input only) .. 1 (fully denoised).
    remove_dc: take a DC offset (and drift below 1 Hz) out of the input first, so the model's
    gains cannot turn it into thumps; the dry share of ``mix`` is without it too.
    """

    dc_cutoff_hz = DC_CUTOFF_HZ

    def __init__(self, model: str | None = None, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0, remove_dc: bool = True):
        super().__init__()
        self._model = DENOISERS.load(model or DEFAULT_DENOISER)
        self.manifest = self._model.manifest
        self.model_rate = self.manifest.sample_rate
        self.attenuation_limit_db = attenuation_limit_db
        self.mix = mix
        self.remove_dc = remove_dc

    @property
    def model(self) -> str:
        return self.manifest.name

    @property
    def streaming(self) -> bool:
        """True for causal models fit for live use; False for offline ones (they look ahead, see
        ``manifest.latency_ms``): files and ``reset=True`` renders, where latency is removed."""
        return self.manifest.streaming

    @property
    def attenuation_limit_db(self) -> float:
        return self._attenuation_limit_db

    @attenuation_limit_db.setter
    def attenuation_limit_db(self, value: float) -> None:
        self._attenuation_limit_db = check_range("attenuation_limit_db", value, 0.0, MAX_ATTENUATION_DB)
        self._apply("attenuation_limit_db", self._attenuation_limit_db)

    @property
    def mix(self) -> float:
        return self._mix

    @mix.setter
    def mix(self, value: float) -> None:
        self._mix = check_range("mix", value, 0.0, 1.0)
        self._apply("mix", self._mix)

    @property
    def remove_dc(self) -> bool:
        return self._remove_dc

    @remove_dc.setter
    def remove_dc(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ParameterError(f"remove_dc must be True or False, got {value!r}")
        self._remove_dc = bool(value)
        if self._stream is not None:
            self._stream.adapter.remove_dc = self._remove_dc

    def _apply(self, name: str, value: float) -> None:
        """Settings changed while streaming take effect at the next frame (smoothly, via overlap-add)."""
        if self._stream is not None:
            for p in self._stream.adapter.processors:
                setattr(p, name, value)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency at the model's rate (STFT overlap + lookahead)."""
        return self.manifest.latency_samples

    @property
    def latency_ms(self) -> float:
        return self.manifest.latency_ms

    def _make_processors(self, channels: int) -> list:
        return [make_processor(self._model, self._attenuation_limit_db, self._mix) for _ in range(channels)]

    def __reduce__(self):
        """Pickling and copying carry the model and the settings, not a stream in progress (a copy
        starts from silence), so an effect can go to a worker process or be copied per track."""
        return (type(self), (str(self.manifest.path), self._attenuation_limit_db, self._mix, self._remove_dc))

    def __repr__(self) -> str:
        return (
            f"<plugin_host.Denoise model={self.model!r} attenuation_limit_db={self._attenuation_limit_db:g} "
            f"mix={self._mix:g}" + ("" if self._remove_dc else " remove_dc=False") + ">"
        )
