"""Dehum: notch out mains hum, the 50 or 60 Hz of a ground loop and the harmonics that stand out.

A denoiser hears hum under a voice as part of the voice: its gains open for the voice's low
harmonics and the hum goes through with them (``noisenil_fb`` alone leaves much of it while
someone speaks: ``benchmarks/bench_dehum.py``). Hum is a set of steady lines, so it is taken out
by narrow notch filters instead, before the denoiser.

``HumFinder`` looks for it in a long-term spectrum of the whole input (segments of about 11 s at
48 kHz, so the bins are under 0.1 Hz wide and a steady line stands out of a voice; an input
shorter than that, from 2 s, is looked at whole). For 50 and 60 Hz, harmonics 1 to
``LOW_HARMONICS`` are looked for within ``k`` times ``MAINS_TOLERANCE_HZ`` of ``k`` times the mains
frequency, the others where those put them (within ``k`` times ``DRIFT_HZ``). A harmonic stands
out when its peak is ``PRESENT_DB`` above the median of the spectrum within ``NEIGHBOURHOOD_HZ``:
a voice's harmonics glide and smear into a continuum over seconds; a hum's stay put. Hum is found
where two harmonics stand out (or the fundamental alone by ``STRONG_DB``); motors and
transformers (fridges, dishwashers, fans) hum at the mains' harmonics too, and are found as such.

Each harmonic that stands out is notched at its own measured frequency (the mains is rarely
exactly 50 Hz, and the offset grows with ``k``), each ``bandwidth_hz`` wide: notches widened with
``k`` (for a grid's drift, which grows with ``k``) took more voice than the hum they caught
(measured with ``sqrt(k)`` and ``k ** 0.25``). The notches are causal IIR filters with no latency; from rest they take about
``1 / (pi * bandwidth_hz)`` seconds to settle (a third of a second at 1 Hz), so the first moments
of a file keep some hum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .effects import StreamingEffect, feed
from .errors import ParameterError, check_range

MAINS_HZ = (50.0, 60.0)
MAINS_TOLERANCE_HZ = 0.6  # the grid's frequency may be this far off (times the harmonic number)
LOW_HARMONICS = 4  # looked for within that tolerance; the others where these put them
DRIFT_HZ = 0.05  # and within this (times the number) of there
SEGMENT_S = 8.0  # at least this long (a power of two in samples): bins under 0.13 Hz, where a steady line stands out of a voice
SHORTEST_S = 2.0  # an input shorter than one segment is looked at whole, from this long
NEIGHBOURHOOD_HZ = 15.0  # the floor a line stands out of: the median within this of it
PRESENT_DB = 10.0  # a harmonic this far over its floor is notched
STRONG_DB = 20.0  # a fundamental this far over it is hum even alone
MAX_HZ = 4000.0  # no notches above this: a buzz's upper harmonics are left to the denoiser
HOP_S = 0.01
BANDWIDTH_HZ = 1.0  # each notch's width (-3 dB)


@dataclass
class Hum:
    """What ``find_hum`` found: the mains frequency and each harmonic notched (number, Hz, dBFS RMS)."""

    mains_hz: float
    frequency_hz: float  # the fundamental as measured (mean of harmonic / number)
    harmonics: list[tuple[int, float, float]] = field(default_factory=list)

    @property
    def level_dbfs(self) -> float:
        return float(10 * np.log10(sum(10 ** (level / 10) for _, _, level in self.harmonics)))

    def describe(self) -> str:
        """``mains hum at 50.0 Hz, -42 dBFS (5 harmonics up to 250 Hz)``."""
        top = max(hz for _, hz, _ in self.harmonics)
        lines = "1 line" if len(self.harmonics) == 1 else f"{len(self.harmonics)} lines up to {top:.0f} Hz"
        return f"mains hum at {self.frequency_hz:.1f} Hz, {self.level_dbfs:.0f} dBFS ({lines})"


class HumFinder:
    """The long-term spectrum of a file streaming past (mono mix), and the hum in it.

    memory: how much of the spectrum so far each new segment keeps (1: all of it, a file's mean;
    live monitoring forgets, so that hum that starts late stands out within a segment or two).
    """

    def __init__(self, sample_rate: int, max_harmonics: int = 20, memory: float = 1.0):
        self.sample_rate = sample_rate
        self.max_harmonics = max_harmonics
        self.memory = memory
        self._weight = 0.0  # the segments' weights summed (their count while nothing is forgotten)
        self.n = 1 << int(np.ceil(np.log2(SEGMENT_S * sample_rate)))
        self._bins = int(min(MAX_HZ + 2 * NEIGHBOURHOOD_HZ, sample_rate / 2) * self.n / sample_rate) + 1
        self._window = np.hanning(self.n)
        self._power = np.zeros(self._bins)
        self._segments = 0
        self._buf = np.zeros(self.n)  # the segment being filled (preallocated: live monitoring feeds it for hours)
        self._fill = 0

    def add(self, chunk: np.ndarray) -> None:
        """chunk: (channels, n)."""
        chunk = np.asarray(chunk)
        done = 0
        while done < chunk.shape[1]:
            take = min(chunk.shape[1] - done, self.n - self._fill)
            part = chunk[:, done : done + take]
            self._buf[self._fill : self._fill + take] = part[0] if len(part) == 1 else np.mean(part, axis=0, dtype=np.float64)
            self._fill += take
            done += take
            if self._fill == self.n:
                self._segment(self._buf)
                self._fill = 0

    def _segment(self, x: np.ndarray) -> None:
        spectrum = np.fft.rfft(x * self._window)[: self._bins]
        self._power *= self.memory
        self._power += np.abs(spectrum) ** 2
        self._weight = self.memory * self._weight + 1.0
        self._segments += 1

    def finish(self) -> Hum | None:
        """The hum found, or None."""
        if self._segments == 0 and self._fill >= SHORTEST_S * self.sample_rate:  # shorter than a segment: as it is
            x = self._buf[: self._fill].copy()
            self.n = 1 << int(np.log2(len(x)))
            self._bins = int(min(MAX_HZ + 2 * NEIGHBOURHOOD_HZ, self.sample_rate / 2) * self.n / self.sample_rate) + 1
            self._window = np.hanning(self.n)
            self._power = np.zeros(self._bins)
            self._segment(x[-self.n :])
        self._fill = 0  # what is left over (under one segment) is not looked at
        return self.result()

    @property
    def segments(self) -> int:
        """Segments looked at so far (one per ``n`` samples)."""
        return self._segments

    def result(self) -> Hum | None:
        """The hum in what has been looked at so far (whole segments), or None; for an input
        still coming in (live monitoring). ``finish`` also looks at a short input whole."""
        if self._segments == 0 or not np.any(self._power):
            return None
        found = [self._harmonics(mains) for mains in MAINS_HZ]
        best = max(found, key=lambda h: sum(p for _, _, _, p in h))
        if not best:
            return None
        strong_fundamental = best[0][0] == 1 and best[0][3] >= STRONG_DB
        if len(best) < 2 and not strong_fundamental:
            return None
        mains = MAINS_HZ[found.index(best)]
        frequency = float(np.mean([hz / k for k, hz, _, _ in best]))
        return Hum(mains, frequency, [(k, hz, level) for k, hz, level, _ in best])

    def _harmonics(self, mains: float) -> list[tuple[int, float, float, float]]:
        """(number, Hz, dBFS RMS, dB over the floor) of each harmonic of ``mains`` that stands out:
        the first ``LOW_HARMONICS`` within the grid's tolerance, the rest where those put them."""
        power = self._power / self._weight
        out = []
        for k in range(1, min(LOW_HARMONICS, self.max_harmonics) + 1):
            line = self._line(power, k * mains, k * MAINS_TOLERANCE_HZ)
            if line:
                out.append((k, *line))
        if not out:
            return out
        frequency = float(np.mean([hz / k for k, hz, _, _ in out]))
        for k in range(LOW_HARMONICS + 1, self.max_harmonics + 1):
            line = self._line(power, k * frequency, max(2 * self.sample_rate / self.n, k * DRIFT_HZ))
            if line is False:
                break
            if line:
                out.append((k, *line))
        return out

    def _line(self, power: np.ndarray, centre: float, half_width: float):
        """(Hz, dBFS RMS, dB over the floor) of the peak within ``half_width`` of ``centre`` if it
        stands out; None if it does not; False past the spectrum kept."""
        hz_per_bin = self.sample_rate / self.n
        if centre + half_width + NEIGHBOURHOOD_HZ >= (self._bins - 1) * hz_per_bin:
            return False
        lo, hi = int((centre - half_width) / hz_per_bin), int(np.ceil((centre + half_width) / hz_per_bin)) + 1
        peak = lo + int(np.argmax(power[lo:hi]))
        if peak in (lo, hi - 1):  # on the edge: the slope of something wider
            return None
        around = np.r_[max(1, int((centre - NEIGHBOURHOOD_HZ) / hz_per_bin)) : lo, hi : int((centre + NEIGHBOURHOOD_HZ) / hz_per_bin)]
        floor = float(np.median(power[around]))
        over_db = float(10 * np.log10(power[peak] / max(floor, 1e-30)))
        if over_db < PRESENT_DB:
            return None
        a, b, c = np.log(power[peak - 1 : peak + 2] + 1e-300)  # parabolic interpolation of the peak
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
        # a Hann-windowed sine of amplitude A puts 3 (A N)^2 / 32 into the three bins at its peak
        amplitude = np.sqrt(np.sum(power[peak - 1 : peak + 2]) * 32.0 / 3.0) / len(self._window)
        level = float(20 * np.log10(max(amplitude / np.sqrt(2), 1e-12)))
        return float((peak + shift) * hz_per_bin), level, over_db


def find_hum(chunks, sample_rate: int, max_harmonics: int = 20) -> Hum | None:
    """The hum in a whole input (an iterable of (channels, n) chunks), or None."""
    finder = HumFinder(sample_rate, max_harmonics)
    for chunk in chunks:
        finder.add(chunk)
    return finder.finish()


def notch_sos(frequencies_hz: list[tuple[int, float]], bandwidth_hz: float, sample_rate: int) -> np.ndarray:
    """Second-order sections of a notch at each (harmonic number, Hz), each ``bandwidth_hz`` wide."""
    from scipy.signal import iirnotch, tf2sos

    sections = [np.zeros((0, 6))]
    for k, hz in frequencies_hz:
        if 0 < hz < 0.45 * sample_rate:
            b, a = iirnotch(hz, hz / bandwidth_hz, sample_rate)
            sections.append(tf2sos(b, a))
    return np.concatenate(sections)


class NotchProcessor:
    """One channel: a hop in, the hop through the notches out (no latency)."""

    latency_samples = 0

    def __init__(self, sos: np.ndarray, hop: int):
        from scipy.signal import sosfilt

        self._sosfilt = sosfilt
        self.hop_length = self.frame_size = hop
        self.sos = sos
        self.reset()

    def reset(self) -> None:
        self._zi = np.zeros((len(self.sos), 2))

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        if not len(self.sos):
            return np.asarray(hop, np.float32)
        y, self._zi = self._sosfilt(self.sos, np.asarray(hop, np.float64), zi=self._zi)
        return y.astype(np.float32)


class _HumScan(HumFinder):
    """Finds the hum in a whole input, for a ``Dehum`` (see ``Dehum.scanner``)."""

    def __init__(self, effect: Dehum, sample_rate: int):
        super().__init__(sample_rate, effect.max_harmonics)
        self.effect = effect

    def finish(self) -> Hum | None:
        self.effect.found = super().finish()
        return self.effect.found


class Dehum(StreamingEffect):
    """Notch out mains hum (pedalboard's effect contract, as ``Denoise``).

    frequency_hz: 50 or 60 to notch that and its harmonics up to ``max_harmonics``
    whatever is there; None (the default): the hum found in the whole input first, its own
    frequency and only the harmonics that stand out. The input is looked at by ``process`` with
    ``reset=True``, by a ``Chain`` that starts with this step, and by ``render``; streaming
    (``reset=False``) uses the hum last found, and passes the audio as it is until one is.
    bandwidth_hz: each notch's width (-3 dB).
    max_harmonics: the highest harmonic notched (20: 1 kHz at 50 Hz; a buzz above is left to the denoiser).
    """

    def __init__(self, frequency_hz: float | None = None, bandwidth_hz: float = BANDWIDTH_HZ, max_harmonics: int = 20):
        super().__init__()
        self.frequency_hz = frequency_hz
        self.bandwidth_hz = bandwidth_hz
        self.max_harmonics = max_harmonics
        self.found: Hum | None = None  # what the last look at an input found (with frequency_hz=None)
        self._processors: list[NotchProcessor] = []

    @property
    def frequency_hz(self) -> float | None:
        return self._frequency_hz

    @frequency_hz.setter
    def frequency_hz(self, value: float | None) -> None:
        if value is not None and value not in MAINS_HZ:
            raise ParameterError(f"frequency_hz must be 50, 60 or None (find it), got {value!r}")
        self._frequency_hz = None if value is None else float(value)

    @property
    def bandwidth_hz(self) -> float:
        return self._bandwidth_hz

    @bandwidth_hz.setter
    def bandwidth_hz(self, value: float) -> None:
        self._bandwidth_hz = check_range("bandwidth_hz", value, 0.1, 10.0)

    @property
    def max_harmonics(self) -> int:
        return self._max_harmonics

    @max_harmonics.setter
    def max_harmonics(self, value: int) -> None:
        if int(value) != value:
            raise ParameterError(f"max_harmonics must be a whole number, got {value!r}")
        self._max_harmonics = int(check_range("max_harmonics", value, 1, 80))

    def notches(self, sample_rate: int) -> list[tuple[int, float]]:
        """(harmonic number, Hz) of each notch in use."""
        if self._frequency_hz is not None:
            top = min(self._max_harmonics, int(min(MAX_HZ, 0.45 * sample_rate) // self._frequency_hz))
            return [(k, k * self._frequency_hz) for k in range(1, top + 1)]
        if self.found is None:
            return []
        return [(k, hz) for k, hz, _ in self.found.harmonics if k <= self._max_harmonics]

    scans_input = True

    def scanner(self, sample_rate: int) -> _HumScan | None:
        """The hum in the input, to be found (None with a ``frequency_hz`` of its own)."""
        return _HumScan(self, sample_rate) if self._frequency_hz is None else None

    def find_hum(self, chunks, sample_rate: int) -> Hum | None:
        """Look at the whole input (an iterable of (channels, n) chunks) for hum and notch what is
        found while ``frequency_hz`` is None; returns it."""
        return feed(_HumScan(self, sample_rate), chunks)

    def _make_processors(self, channels: int) -> list:
        rate = self._rate
        sos = notch_sos(self.notches(rate), self._bandwidth_hz, rate)
        hop = max(1, int(round(HOP_S * rate)))
        self._processors = [NotchProcessor(sos, hop) for _ in range(channels)]
        return self._processors

    def __reduce__(self):
        return (type(self), (self._frequency_hz, self._bandwidth_hz, self._max_harmonics))

    def __repr__(self) -> str:
        frequency = "auto" if self._frequency_hz is None else f"{self._frequency_hz:g}"
        return f"<plugin_host.Dehum frequency_hz={frequency} bandwidth_hz={self._bandwidth_hz:g} max_harmonics={self._max_harmonics}>"
