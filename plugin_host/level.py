"""Leveler: bring every voice in a recording to one speech level (a quiet guest up, a loud host down).

A podcast has speakers at different distances from their mics, and one speaker drifts; a
compressor evens out syllables, not speakers. The leveler measures the level of the speech
(pauses and noise left out), averages it over a couple of seconds, and moves one gain slowly
towards ``target_db``: at most ``max_gain_db`` up and ``max_cut_db`` down, at most
``SLEW_DB_PER_S`` per second, held through long pauses so that room tone is not pumped up.

All channels share the gain (a stereo image stays put). It looks ``LOOKAHEAD_S`` ahead, so a
speaker who starts loud is turned down as they start, not a second later; streamed, the output
is that much late (for files, not live monitoring). Peaks it raises can go over full scale: in
``noisenil render`` a loudness target's limiter holds them, and without one the file is turned
down just enough (as after ``Declip``).
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from .effects import StreamingEffect
from .errors import check_range
from .processor import DCBlocker

HOP_S = 0.01
LOOKAHEAD_S = 1.5  # the speech level at t is the median over t - 1 s .. t + 1.5 s
LOOKBACK_S = 1.0
FLOOR_RISE_DB_PER_S = 3.0  # the noise floor follows rises this slowly, falls at once
ACTIVE_ABOVE_FLOOR_DB = 10.0  # a hop this far over the floor is speech
QUIETEST_SPEECH_DB = -60.0  # below this nothing is speech, whatever the floor
SLEW_DB_PER_S = 20.0
DETECTOR_HIGHPASS_HZ = 100.0  # the level detector ignores rumble and hum below the voice


class LevelProcessor:
    """All channels at once (one gain): a (channels, hop) block in, the block ``latency_samples`` earlier out."""

    multichannel = True

    def __init__(self, sample_rate: int, channels: int, target_db: float, max_gain_db: float, max_cut_db: float):
        self.hop_length = self.frame_size = max(1, int(round(HOP_S * sample_rate)))
        self.lookahead_hops = int(round(LOOKAHEAD_S / HOP_S))
        self.latency_samples = self.lookahead_hops * self.hop_length
        self.target_db, self.max_gain_db, self.max_cut_db = target_db, max_gain_db, max_cut_db
        self.channels = channels
        hop_s = self.hop_length / sample_rate
        self._window = self.lookahead_hops + int(round(LOOKBACK_S / HOP_S)) + 1
        self._floor_rise = FLOOR_RISE_DB_PER_S * hop_s
        self._slew = SLEW_DB_PER_S * hop_s
        self._detector = DCBlocker(channels, sample_rate, DETECTOR_HIGHPASS_HZ)  # the same one-pole high-pass, higher
        self.reset()

    def reset(self) -> None:
        self._delay = np.zeros((self.channels, self.latency_samples + self.hop_length))
        self._detector.reset()
        self._floor_db = None
        self._levels = np.full(self._window, np.nan)  # speech hops' levels (dB) in the window, NaN for the others
        self._wanted_db = None
        self._gain_db = 0.0
        self.gains_db = array("f")  # the gain of each hop, for drawing and tests (4 bytes a hop)

    def _hop_level_db(self, hop: np.ndarray) -> float:
        """Mean-square level of the hop after the detector's high-pass (dBFS, over all channels)."""
        y = self._detector(hop)
        return 10.0 * math.log10(float(np.mean(np.square(y, dtype=np.float64))) + 1e-12)

    def _step_gain(self, level_db: float) -> None:
        """Take the newest hop's level; move the gain of the hop ``lookahead_hops`` older.

        The speech level there is the median of the speech hops' levels from 1 s before it to
        1.5 s after it: a median in dB does not follow syllables, and it changes over to the next
        speaker about when the window's middle crosses into their turn, a little before it
        (more window ahead than behind), so the gain moves in the gap between two voices. In a
        long pause with no speech in the window the gain is held: room tone is not pumped up.
        """
        if self._floor_db is None:
            self._floor_db = level_db
        self._floor_db = min(level_db, self._floor_db + self._floor_rise)
        active = level_db > max(self._floor_db + ACTIVE_ABOVE_FLOOR_DB, QUIETEST_SPEECH_DB)
        self._levels[:-1] = self._levels[1:]
        self._levels[-1] = level_db if active else np.nan
        speech = self._levels[~np.isnan(self._levels)]
        if len(speech):
            self._wanted_db = min(self.max_gain_db, max(-self.max_cut_db, self.target_db - float(np.median(speech))))
        if self._wanted_db is not None:
            self._gain_db += min(self._slew, max(-self._slew, self._wanted_db - self._gain_db))

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        h = self.hop_length
        start_db = self._gain_db
        self._step_gain(self._hop_level_db(hop))  # measured on the newest hop, applied to the one a second older
        self._delay[:, :-h], self._delay[:, -h:] = self._delay[:, h:], hop
        out = self._delay[:, :h]
        ramp = 10.0 ** ((start_db + (self._gain_db - start_db) * (np.arange(1, h + 1) / h)) / 20.0)  # no zipper
        self.gains_db.append(self._gain_db)
        return (out * ramp).astype(np.float32)


class Level(StreamingEffect):
    """Even out speech levels (pedalboard's effect contract, as ``Denoise``).

    target_db: the speech level aimed at: the median level (dBFS) of the speech's 10 ms hops,
    pauses left out; -28 is a conversational podcast voice before loudness normalisation.
    max_gain_db / max_cut_db: how far a voice may be turned up / down.
    """

    def __init__(self, target_db: float = -28.0, max_gain_db: float = 15.0, max_cut_db: float = 15.0):
        super().__init__()
        self.target_db = check_range("target_db", target_db, -50.0, -6.0)
        self.max_gain_db = check_range("max_gain_db", max_gain_db, 0.0, 30.0)
        self.max_cut_db = check_range("max_cut_db", max_cut_db, 0.0, 30.0)
        self._processor: LevelProcessor | None = None

    @property
    def gains_db(self) -> np.ndarray:
        """The gain given to each 10 ms hop of the audio in the last render (or in the stream going on)."""
        p = self._processor
        return np.asarray(p.gains_db[p.lookahead_hops :] if p else [], dtype=np.float32)

    def _make_processors(self, channels: int) -> list:
        self._processor = LevelProcessor(self._rate, channels, self.target_db, self.max_gain_db, self.max_cut_db)
        return [self._processor]  # one for all channels: they share the gain

    def __reduce__(self):
        return (type(self), (self.target_db, self.max_gain_db, self.max_cut_db))

    def __repr__(self) -> str:
        return f"<plugin_host.Level target_db={self.target_db:g} max_gain_db={self.max_gain_db:g} max_cut_db={self.max_cut_db:g}>"
