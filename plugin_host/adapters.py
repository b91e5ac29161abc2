"""Frame processors for models whose framing is not "STFT frame in, mask/spectrum out".

One explicit registry maps a manifest's ``adapter`` to the processor class; each class takes a
``LoadedModel`` and the two user knobs and honours the frame-processor contract
(``frame_size``, ``hop_length``, ``latency_samples``, ``process_frame``, ``reset``).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .errors import ModelError
from .processor import MAX_ATTENUATION_DB, Controls, SpectralModelProcessor
from .registry import LoadedModel
from .stft import StreamingSTFT


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


class PatchProcessor(Controls):
    """Offline spectrogram-patch models (the seed zoo's DnCNN, ResNet U-Net, mel diffusion).

    The graph maps a magnitude patch (1, 1, F, P) to gains of the same shape (and may take a noise
    tensor: diffusion). Patches overlap by half and their gains are cross-faded with a sin^2 window
    (which sums to one), on a fixed grid: P/2 silent frames, then the signal. A frame's gain is
    complete once the second patch covering it has run, at most P - 1 frames later, so every
    output is delayed by exactly P - 1 frames (plus the STFT overlap): ``latency_samples``.
    Noise for a sampling model is drawn from a generator seeded by (``noise_seed``, patch number),
    so a render does not depend on how the input was split into buffers.
    """

    def __init__(self, model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
        m = model.manifest
        p = m.params
        self.model = model
        self.frame_size, self.hop_length = m.n_fft, m.hop_length
        self.patch = int(p["patch_frames"])
        self.half = self.patch // 2
        self.latency_samples = m.n_fft - m.hop_length + (self.patch - 1) * m.hop_length
        self.stft = StreamingSTFT(m.n_fft, m.hop_length, m.window)
        self._in_name = m.input.name
        self._noise = (p["noise_input"], tuple(p["noise_shape"]), int(p.get("noise_seed", 0))) if p.get("noise_input") else None
        self._fade = (np.sin(np.pi * (np.arange(self.patch) + 0.5) / self.patch) ** 2)[None, :]
        self.attenuation_limit_db = attenuation_limit_db
        self.mix = mix
        self.reset()

    def reset(self) -> None:
        f = self.frame_size // 2 + 1
        self.stft.reset()
        self._mag = np.zeros((f, self.patch), np.float32)  # the last P frames, oldest first
        self._spec = np.zeros((self.patch, f), np.complex128)
        self._carry = np.zeros((f, self.half))
        self._v = self.half - 1  # index of the newest frame on the grid (after P/2 silent ones)
        self._patches = 0
        self._calls = 0
        self._ready: deque = deque()

    def _gains(self) -> np.ndarray:
        feeds = {self._in_name: self._mag[None, None]}
        if self._noise is not None:
            name, shape, seed = self._noise
            feeds[name] = np.random.default_rng([seed, self._patches]).standard_normal(shape).astype(np.float32)
        self._patches += 1
        return self.model.run(feeds)[0][0, 0].astype(np.float64)

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        spec = self.stft.analyze(hop)
        self._mag[:, :-1] = self._mag[:, 1:]
        self._mag[:, -1] = np.abs(spec)
        self._spec[:-1] = self._spec[1:]
        self._spec[-1] = spec
        self._v += 1
        h = self.half
        if (self._v + 1) % h == 0 and self._v + 1 >= self.patch:
            g = self._gains() * self._fade
            done = self._carry + g[:, :h]
            self._carry = g[:, h:]
            first = self._v + 1 - self.patch  # grid index of the window's oldest frame
            for j in range(h):
                if first + j >= h:  # a real frame, not one of the silent lead-in
                    gain = np.maximum(done[:, j], self._floor)
                    self._ready.append(self._spec[j] * (self._mix * gain + (1.0 - self._mix)))
        out = self._ready.popleft() if self._calls >= self.patch - 1 else np.zeros(self.frame_size // 2 + 1, np.complex128)
        self._calls += 1
        return self.stft.synthesize(out)


class WaveProcessor(Controls):
    """Offline waveform models (the seed zoo's FCN): chunks of ``chunk_samples`` with
    ``context_samples`` of real signal on each side, of which the centre is kept. With context at
    least the receptive radius, the result equals running the network over the whole file.
    Latency: the context (the right-hand side must have arrived)."""

    def __init__(self, model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
        m = model.manifest
        p = m.params
        self.model = model
        self.hop_length = self.frame_size = int(p["chunk_samples"])
        self.context = int(p["context_samples"])
        if self.context > self.hop_length:
            raise ModelError(f"{m.path}: context_samples {self.context} exceeds chunk_samples {self.hop_length}")
        self.latency_samples = self.context
        self._in_name = m.input.name
        self.attenuation_limit_db = attenuation_limit_db
        self.mix = mix
        self.reset()

    def reset(self) -> None:
        self._x = np.zeros(self.hop_length + 2 * self.context, np.float32)

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        n, c = self.hop_length, self.context
        self._x[:-n] = self._x[n:]
        self._x[-n:] = hop
        y = self.model.run({self._in_name: self._x[None, None]})[0].reshape(-1)
        return self.blend(y[c : c + n], self._x[c : c + n]).astype(np.float32)


ADAPTERS = {
    "spectral": SpectralModelProcessor,
    "dtln": DTLNProcessor,
    "patch": PatchProcessor,
    "wave": WaveProcessor,
}


def make_processor(model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
    """The frame processor for one channel of ``model``, chosen by its manifest's ``adapter``."""
    adapter = model.manifest.adapter
    if adapter == "deepfilternet" and adapter not in ADAPTERS:
        from . import (
            deepfilternet,  # registers itself; imported lazily (it edits graphs at load time)
        )

        ADAPTERS.setdefault(adapter, deepfilternet.DeepFilterNetProcessor)
    if adapter not in ADAPTERS:
        raise ModelError(f"{model.manifest.path}: adapter {adapter!r} not available; known: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[adapter](model, attenuation_limit_db, mix)
