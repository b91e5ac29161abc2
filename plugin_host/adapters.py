"""Frame processors for models whose framing is not "STFT frame in, mask/spectrum out".

One explicit registry maps a manifest's ``adapter`` to the processor class; each class takes a
``LoadedModel`` and the two user knobs and honours the frame-processor contract
(``frame_size``, ``hop_length``, ``latency_samples``, ``process_frame``, ``reset``).
"""

from __future__ import annotations

import numpy as np

from .errors import ModelError
from .processor import MAX_ATTENUATION_DB, Controls, SpectralModelProcessor
from .registry import LoadedModel


class DTLNProcessor(Controls):
    """DTLN (Westhausen & Meyer 2020): two chained LSTM models, 16 kHz, block 512, shift 128.

    Stage 1 predicts a magnitude mask from |rfft(block)| (no window); stage 2 refines the masked
    time-domain block. Output blocks are overlap-added and scaled by shift/block, as in the
    authors' real_time_processing_onnx.py. Latency: block - shift = 384 samples (24 ms).
    """

    def __init__(self, model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
        m = model.manifest
        p = m.params
        self.model = model
        self.frame_size, self.hop_length = m.n_fft, m.hop_length
        self.latency_samples = self.frame_size - self.hop_length
        self._s1, self._s2 = model.sessions["model_1"], model.sessions["model_2"]
        self._io1 = (p["mag_in"], p["state1_in"], p["mask_out"], p["state1_out"])
        self._io2 = (p["block_in"], p["state2_in"], p["block_out"], p["state2_out"])
        self._state_shape = tuple(p["state_shape"])
        overlap = self.hop_length / self.frame_size
        self._scale = overlap if overlap < 0.5 else 1.0  # upstream keeps the amplitude at 75 % overlap
        self.attenuation_limit_db = attenuation_limit_db
        self.mix = mix
        self.reset()

    def reset(self) -> None:
        self._in = np.zeros(self.frame_size, np.float32)
        self._out = np.zeros(self.frame_size, np.float32)
        self._state1 = np.zeros(self._state_shape, np.float32)
        self._state2 = np.zeros(self._state_shape, np.float32)

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        h = self.hop_length
        self._in[:-h] = self._in[h:]
        self._in[-h:] = hop
        spec = np.fft.rfft(self._in)
        mag = np.abs(spec).astype(np.float32).reshape(1, 1, -1)
        mag_in, st1_in, mask_out, st1_out = self._io1
        mask, self._state1 = self._s1.run([mask_out, st1_out], {mag_in: mag, st1_in: self._state1})
        block = np.fft.irfft(spec * mask.reshape(-1), n=self.frame_size).astype(np.float32).reshape(1, 1, -1)
        blk_in, st2_in, blk_out, st2_out = self._io2
        out_block, self._state2 = self._s2.run([blk_out, st2_out], {blk_in: block, st2_in: self._state2})
        self._out[:-h] = self._out[h:]
        self._out[-h:] = 0.0
        self._out += out_block.reshape(-1) * self._scale
        dry = self._in[:h]  # the input from block - shift samples ago: aligned with this output
        return self.blend(self._out[:h].copy(), dry).astype(np.float32)


ADAPTERS = {
    "spectral": SpectralModelProcessor,
    "dtln": DTLNProcessor,
}


def make_processor(model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
    """The frame processor for one channel of ``model``, chosen by its manifest's ``adapter``."""
    adapter = model.manifest.adapter
    if adapter == "deepfilternet" and adapter not in ADAPTERS:
        from . import deepfilternet  # registers itself; imported lazily (it edits graphs at load time)

        ADAPTERS.setdefault(adapter, deepfilternet.DeepFilterNetProcessor)
    if adapter not in ADAPTERS:
        raise ModelError(f"{model.manifest.path}: adapter {adapter!r} not available; known: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[adapter](model, attenuation_limit_db, mix)
