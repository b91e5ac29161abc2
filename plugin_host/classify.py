"""Noise classification in the engine: timelines for files, a running estimate for live input,
and ``ClassifyNoise``, a pedalboard-compatible effect that passes audio through unchanged.

The classifier model (``kind: classifier`` manifest) takes a (n_mels x patch_frames) log-mel patch
of about 1 s at its own rate and returns probabilities over its ``labels``. A new estimate is made
every ``step_seconds`` (0.5 s) from the last second of audio.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .audio_io import probe, read_chunks
from .effects import as_channels_first, check_buffer_size, restore_layout
from .engine import Resampler, check_sample_rate
from .errors import ParameterError
from .features import log_mel
from .registry import CLASSIFIERS, LoadedModel

DEFAULT_CLASSIFIER = "noise_classifier"
SMOOTHING_SECONDS = 3.0  # time constant of the running estimate
QUIET_DBFS = -70.0  # below this level a second is "quiet" whatever the model says (it never saw true silence)


@dataclass
class Estimate:
    start: float  # seconds, of the analysed second
    end: float
    probabilities: np.ndarray

    def label(self, labels) -> str:
        return labels[int(np.argmax(self.probabilities))]


MIN_SECONDS = 0.25  # the shortest recording that gets an estimate


class NoiseClassifierStream:
    """Feed audio at any rate and channel count; get an ``Estimate`` every step."""

    def __init__(self, model: str | None = None, sample_rate: int = 48000, channels: int = 1):
        self.model: LoadedModel = CLASSIFIERS.load(model or DEFAULT_CLASSIFIER)
        m = self.model.manifest
        self.labels = list(m.labels)
        self.rate = m.sample_rate
        self.n_fft, self.hop = m.n_fft, m.hop_length
        self.n_mels, self.patch_frames = m.params["n_mels"], m.params["patch_frames"]
        self.window = self.n_fft + self.hop * (self.patch_frames - 1)  # samples per patch (~1 s)
        self.step = int(round(m.params["step_seconds"] * self.rate))
        self.host_rate = check_sample_rate(sample_rate)
        self._resampler = Resampler(self.host_rate, self.rate, 1)
        self.reset()

    def reset(self) -> None:
        self._resampler.reset()
        self.finished = False
        self._buf = np.zeros(0, np.float32)
        self._consumed = 0  # model-rate samples dropped from the front of _buf
        self._next_end = self.window  # model-rate sample index where the next estimate ends
        self.timeline: list[Estimate] = []
        self.smoothed: np.ndarray | None = None

    def _estimate(self, end: int, segment: np.ndarray) -> Estimate:
        level_db = 10 * np.log10(np.mean(segment.astype(np.float64) ** 2) + 1e-20)
        if level_db < QUIET_DBFS and "quiet" in self.labels:
            probs = np.eye(len(self.labels))[self.labels.index("quiet")]
        else:
            feats = log_mel(segment, self.rate, self.n_fft, self.hop, self.n_mels).T[None, None]
            probs = self.model.session.run([self.model.manifest.output.name], {self.model.manifest.input.name: feats.astype(np.float32)})[0][0]
        est = Estimate(max(0.0, (end - self.window) / self.rate), end / self.rate, probs.astype(np.float64))
        self.timeline.append(est)
        alpha = np.exp(-self.step / self.rate / SMOOTHING_SECONDS)
        self.smoothed = est.probabilities if self.smoothed is None else alpha * self.smoothed + (1 - alpha) * est.probabilities
        return est

    def push(self, x: np.ndarray) -> list[Estimate]:
        """x: (channels, n) at the host rate."""
        mono = x.mean(axis=0, keepdims=True) if x.shape[0] > 1 else x
        y = self._resampler(mono.astype(np.float32))[0]
        return self._consume(y)

    def _consume(self, y: np.ndarray) -> list[Estimate]:
        self._buf = np.concatenate([self._buf, y])
        out = []
        while self._consumed + len(self._buf) >= self._next_end:
            end = self._next_end
            a = end - self.window - self._consumed
            out.append(self._estimate(end, self._buf[a : a + self.window]))
            self._next_end += self.step
        keep_from = self._next_end - self.window - self._consumed
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._consumed += keep_from
        return out

    def finish(self) -> list[Estimate]:
        """Flush; a recording shorter than one patch still gets one estimate (its audio repeated),
        if it lasts at least ``MIN_SECONDS`` (a few milliseconds repeated would be a buzz, not the
        recording's noise)."""
        self.finished = True  # no more input: a later streaming call starts a new stream
        out = [] if self._resampler.identity else self._consume(self._resampler(np.zeros((1, 0), np.float32), last=True)[0])
        if not self.timeline and len(self._buf) >= MIN_SECONDS * self.rate:
            seg = np.tile(self._buf, int(np.ceil(self.window / len(self._buf))))[: self.window]
            out.append(self._estimate(self._consumed + len(self._buf), seg))
        return out


@dataclass
class Summary:
    path: str
    labels: list[str]
    timeline: list[Estimate] = field(default_factory=list)

    @property
    def shares(self) -> dict[str, float]:
        if not self.timeline:
            return {lab: 0.0 for lab in self.labels}
        winners = [int(np.argmax(e.probabilities)) for e in self.timeline]
        return {lab: winners.count(i) / len(winners) for i, lab in enumerate(self.labels)}

    @property
    def label(self) -> str | None:
        """The label of most steps; None when the recording is too short for any (``MIN_SECONDS``)."""
        if not self.timeline:
            return None
        shares = self.shares
        return max(self.labels, key=lambda lab: shares[lab])

    def as_json(self) -> dict:
        return {
            "file": self.path,
            "label": self.label,
            "labels": self.labels,
            "shares": {k: round(v, 4) for k, v in self.shares.items()},
            "timeline": [
                {"start": round(e.start, 3), "end": round(e.end, 3), "label": e.label(self.labels), "probabilities": {lab: round(float(p), 4) for lab, p in zip(self.labels, e.probabilities)}}
                for e in self.timeline
            ],
        }


def classify_file(path: str | os.PathLike, model: str | None = None) -> Summary:
    """Timeline of a whole file (chunked: flat memory); raises AudioFileError for bad input."""
    info = probe(path)
    stream = NoiseClassifierStream(model, info.sample_rate, info.channels)
    for chunk in read_chunks(info, info.sample_rate * 10):
        stream.push(chunk)
    stream.finish()
    return Summary(str(path), stream.labels, stream.timeline)


class ClassifyNoise:
    """Pass-through effect that classifies what it hears (pedalboard contract; no latency).

    ``latest``: the newest estimate (label, probabilities); ``smoothed``: a running average
    over about 3 s; ``timeline``: every estimate since the last reset.
    """

    def __init__(self, model: str | None = None):
        self._model_name = model
        CLASSIFIERS.load(model or DEFAULT_CLASSIFIER)  # fail now on a bad name, not mid-stream
        self._stream: NoiseClassifierStream | None = None

    @property
    def labels(self) -> list[str]:
        return list(CLASSIFIERS.get(self._model_name or DEFAULT_CLASSIFIER).labels)

    def reset(self) -> None:
        self._stream = None

    def _ensure(self, rate: int, channels: int) -> NoiseClassifierStream:
        if self._stream is None or self._stream.host_rate != rate or self._stream.finished:
            self._stream = NoiseClassifierStream(self._model_name, rate, channels)
        return self._stream

    def process(self, input_array, sample_rate: float, buffer_size: int = 8192, reset: bool = True) -> np.ndarray:
        rate = check_sample_rate(sample_rate)
        check_buffer_size(buffer_size)
        x, layout = as_channels_first(input_array)
        if not np.all(np.isfinite(x)):
            raise ParameterError("input_array contains NaN or Inf samples")
        if reset:
            self._stream = None
        stream = self._ensure(rate, x.shape[0])
        stream.push(x)
        if reset:
            stream.finish()
        return restore_layout(np.array(x, dtype=np.float32, copy=True), layout)

    __call__ = process

    @property
    def latest(self) -> tuple[str, dict[str, float]] | None:
        if self._stream is None or not self._stream.timeline:
            return None
        est = self._stream.timeline[-1]
        return est.label(self._stream.labels), dict(zip(self._stream.labels, est.probabilities.tolist()))

    @property
    def smoothed(self) -> dict[str, float] | None:
        if self._stream is None or self._stream.smoothed is None:
            return None
        return dict(zip(self._stream.labels, self._stream.smoothed.tolist()))

    @property
    def timeline(self) -> list[Estimate]:
        return [] if self._stream is None else list(self._stream.timeline)

    def streaming_latency_samples(self, sample_rate: float) -> int:
        return 0

    def offline_pipeline(self, sample_rate: int, channels: int):
        self._stream = None
        stream = self._ensure(check_sample_rate(sample_rate), channels)

        class _Pass:
            def push(self, x):
                stream.push(x)
                return x

            def finish(self):
                stream.finish()
                return np.zeros((channels, 0), np.float32)

        return _Pass()

    def __repr__(self) -> str:
        return f"<plugin_host.ClassifyNoise model={self._model_name or DEFAULT_CLASSIFIER!r}>"
