"""``--model auto``: let the noise classifier pick the denoiser and its strength.

Per recording (files, ``process(reset=True)``): classify, take the dominant class, look up
``auto_policy.json``. While streaming (``reset=False``) the model stays the default and only the
attenuation limit follows the classifier's running estimate, which changes without clicks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .classify import NoiseClassifierStream
from .effects import Denoise, as_channels_first, restore_layout
from .engine import check_sample_rate
from .registry import DENOISERS

POLICY_PATH = Path(__file__).resolve().parent / "auto_policy.json"
AUTO = "auto"


def load_policy() -> dict:
    return json.loads(POLICY_PATH.read_text(encoding="utf-8"))


def choice_for(label: str | None, policy: dict | None = None) -> tuple[str, float]:
    """(denoiser name, attenuation_limit_db) for a noise class (None: the policy's default)."""
    policy = policy or load_policy()
    entry = policy["classes"].get(label, policy["default"])
    model = entry["model"]
    if entry.get("learned"):
        available = set(DENOISERS.names())
        model = next((m for m in policy.get("prefer", []) if m in available), model)
        if model != entry["model"]:
            return model, 100.0
    return model, float(entry["attenuation_limit_db"])


def dominant_label(x: np.ndarray, sample_rate: int) -> str | None:
    """The noise class of most half-second steps; None for a clip too short to classify
    (``classify.MIN_SECONDS``), which then gets the policy's default."""
    stream = NoiseClassifierStream(None, sample_rate, x.shape[0])
    step = 10 * int(sample_rate)  # ten seconds at a time: a whole episode's mixdown and resampling would double its memory
    for start in range(0, x.shape[1], step):
        stream.push(x[:, start : start + step])
    stream.finish()
    winners = [e.label(stream.labels) for e in stream.timeline]
    return max(dict.fromkeys(winners), key=winners.count) if winners else None  # a tie: the first heard (a set's order varies run to run)


class AutoDenoise:
    """A Denoise whose model and strength follow the noise classifier (``remove_dc`` as Denoise's)."""

    def __init__(self, remove_dc: bool = True):
        self.remove_dc = remove_dc
        self.policy = load_policy()
        self.last_label: str | None = None
        self.last_choice: tuple[str, float] | None = None
        self._stream_effect: Denoise | None = None
        self._classifier: NoiseClassifierStream | None = None

    def reset(self) -> None:
        self._stream_effect = None
        self._classifier = None

    def process(self, input_array, sample_rate: float, buffer_size: int = 8192, reset: bool = True) -> np.ndarray:
        rate = check_sample_rate(sample_rate)
        x, layout = as_channels_first(input_array)
        if reset:
            self.reset()  # a later reset=False call streams afresh, as Denoise does
            self.last_label = dominant_label(x, rate)
            self.last_choice = choice_for(self.last_label, self.policy)
            model, limit = self.last_choice
            return Denoise(model, attenuation_limit_db=limit, remove_dc=self.remove_dc).process(input_array, rate, buffer_size=buffer_size, reset=True)
        if self._stream_effect is None:
            self._stream_effect = Denoise(self.policy["default"]["model"], remove_dc=self.remove_dc)
            self._classifier = NoiseClassifierStream(None, rate, x.shape[0])
        if self._classifier.push(x) and self._classifier.smoothed is not None:
            label = self._classifier.labels[int(np.argmax(self._classifier.smoothed))]
            entry = self.policy["classes"].get(label, self.policy["default"])
            self._stream_effect.attenuation_limit_db = float(entry["attenuation_limit_db"])
            self.last_label = label
        y = self._stream_effect.process(x, rate, buffer_size=buffer_size, reset=False)
        return restore_layout(y, layout)

    __call__ = process

    def streaming_latency_samples(self, sample_rate: float) -> int:
        return Denoise(self.policy["default"]["model"]).streaming_latency_samples(sample_rate)
