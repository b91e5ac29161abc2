"""A/B playback of the original and the cleaned audio, loudness-matched, with looping.

One sounddevice output stream plays whichever source is selected from the same playhead, so
the A/B switch is instant and keeps the position. The callback only copies from preallocated
arrays (no allocation, locks, logging or Qt). Without an output device the player still keeps
its playhead and A/B state (so the GUI and tests behave the same) and says why it is silent.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("noisenil.gui")


class Player:
    def __init__(self):
        # "A" original, "B" cleaned: the recording's own (channels, samples) float32 arrays, not
        # copies (an hour of stereo is 1.4 GB each); the original's loudness match is applied as it plays
        self.sources: dict[str, np.ndarray] = {}
        self.gains = {"A": 1.0, "B": 1.0}
        self.sample_rate = 0
        self.which = "B"
        self.position = 0  # samples
        self.loop: tuple[int, int] | None = None
        self.playing = False
        self.error = ""
        self._stream = None

    def load(self, original: np.ndarray, cleaned: np.ndarray, sample_rate: int, loudness_original: float, loudness_cleaned: float) -> None:
        """Both as (channels, samples); the original is scaled to the cleaned one's loudness."""
        self.stop()
        gain = 1.0
        if np.isfinite(loudness_original) and np.isfinite(loudness_cleaned):
            gain = float(10 ** ((loudness_cleaned - loudness_original) / 20))
        self.original_gain_db = 20 * np.log10(gain)
        chans = min(2, original.shape[0])
        self.sources = {"A": original[:chans], "B": cleaned[:chans]}
        self.gains = {"A": np.float32(gain), "B": np.float32(1.0)}
        self.sample_rate = sample_rate
        self.position = min(self.position, self.length)

    def unload(self) -> None:
        """Nothing to play: stop, and forget the last recording's audio."""
        self.stop()
        self.sources = {}
        self.position = 0

    @property
    def length(self) -> int:
        return self.sources["A"].shape[1] if self.sources else 0

    @property
    def seconds(self) -> float:
        return self.position / self.sample_rate if self.sample_rate else 0.0

    def toggle_ab(self) -> str:
        self.which = "A" if self.which == "B" else "B"
        return self.which

    def seek(self, seconds: float) -> None:
        self.position = int(np.clip(seconds * self.sample_rate, 0, max(0, self.length - 1))) if self.sample_rate else 0

    def set_loop(self, start_s: float | None, end_s: float | None) -> None:
        if start_s is None or end_s is None or end_s <= start_s:
            self.loop = None
        else:
            self.loop = (int(start_s * self.sample_rate), int(end_s * self.sample_rate))

    def _callback(self, outdata, frames, time_info, status) -> None:
        src = self.sources.get(self.which)
        if src is None:
            outdata.fill(0)
            return
        gain = self.gains[self.which]
        done = 0
        while done < frames:
            end = self.loop[1] if self.loop else src.shape[1]
            take = min(frames - done, end - self.position)
            if take <= 0:
                if self.loop:
                    self.position = self.loop[0]
                    continue
                outdata[done:].fill(0)
                self.playing = False
                break
            np.multiply(src[:, self.position : self.position + take].T, gain, out=outdata[done : done + take])
            self.position += take
            done += take

    def play(self) -> bool:
        if not self.sources:
            return False
        if self.position >= self.length - 1:
            self.position = self.loop[0] if self.loop else 0
        self.playing = True
        try:
            import sounddevice as sd

            if self._stream is None:
                self._stream = sd.OutputStream(
                    samplerate=self.sample_rate, channels=self.sources["A"].shape[0], dtype="float32", callback=self._callback
                )
            self._stream.start()
            self.error = ""
        except Exception as exc:  # no PortAudio, no device, device busy
            self.error = f"no audio output ({str(exc).splitlines()[0]})"
            log.info("playback unavailable: %s", self.error)
            self._stream = None
        return self._stream is not None

    def pause(self) -> None:
        self.playing = False
        if self._stream is not None:
            self._stream.stop()

    def stop(self) -> None:
        self.pause()
        if self._stream is not None:
            self._stream.close()
            self._stream = None
