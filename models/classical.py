"""Classical denoisers written as streaming torch modules with explicit state, exported to ONNX.

Both take one STFT frame's power spectrum ``power`` [1, F] plus their states and return a gain
per bin [1, F] plus the new states, so they run through exactly the same engine code path as
the learned models.

* ``SpectralSubtraction``: power spectral subtraction (Berouti over-subtraction driven by the
  frame SNR, spectral floor) with a minimum-statistics noise estimate (windowed minimum x bias).
* ``WienerMCRA``: Wiener gain with the decision-directed a-priori SNR (Ephraim & Malah) and the
  minima-controlled recursive averaging (MCRA, Cohen & Berdugo 2001) noise estimate.

Run ``python -m models.classical`` to export both (parity with torch is checked; export fails on mismatch).
"""

from __future__ import annotations


import torch
from torch import nn

SAMPLE_RATE, N_FFT, HOP = 48000, 960, 480
N_BINS = N_FFT // 2 + 1
EPS = 1e-12


class SpectralSubtraction(nn.Module):
    state_names = ("smoothed", "s_min", "s_tmp", "count")

    def __init__(self, smoothing=0.85, window_frames=150, bias=2.5, floor_db=-15.0, max_over=2.0, gain_smoothing=1.0):
        super().__init__()
        self.smoothing, self.bias, self.max_over = smoothing, bias, max_over
        self.gain_smoothing = gain_smoothing  # 0: gain from this frame's power; 1: from the smoothed power
        self.window_frames = float(window_frames)
        self.floor = 10.0 ** (floor_db / 10.0)  # power floor

    def forward(self, power, smoothed, s_min, s_tmp, count):
        first = count < 1.5  # frame 0 is half silence (STFT start): start the trackers on frame 1
        ps = torch.where(first, power, self.smoothing * smoothed + (1.0 - self.smoothing) * power)
        s_min_new = torch.where(first, ps, torch.minimum(s_min, ps))
        s_tmp_new = torch.where(first, ps, torch.minimum(s_tmp, ps))
        restart = (torch.remainder(count + 1.0, self.window_frames) < 0.5) & ~first
        s_min_new = torch.where(restart, torch.minimum(s_tmp_new, ps), s_min_new)
        s_tmp_new = torch.where(restart, ps, s_tmp_new)
        n = self.bias * s_min_new  # minimum statistics underestimate the mean noise power
        snr_db = 10.0 * torch.log10((power.sum(-1, keepdim=True) + EPS) / (n.sum(-1, keepdim=True) + EPS))
        over = torch.clamp(self.max_over - 0.15 * snr_db, 1.0, self.max_over)
        p_ref = self.gain_smoothing * ps + (1.0 - self.gain_smoothing) * power
        g2 = 1.0 - over * n / (p_ref + EPS)
        gain = torch.sqrt(torch.clamp(g2, min=self.floor))
        return gain, ps, s_min_new, s_tmp_new, count + 1.0


class WienerMCRA(nn.Module):
    state_names = ("smoothed", "s_min", "s_tmp", "noise", "presence", "clean_prev", "count")

    def __init__(
        self,
        alpha_s=0.8,
        alpha_d=0.95,
        alpha_p=0.2,
        delta=5.0,
        window_frames=200,
        dd_alpha=0.98,
        xi_min_db=-25.0,
        gain_floor_db=-15.0,
    ):
        super().__init__()
        self.alpha_s, self.alpha_d, self.alpha_p, self.delta = alpha_s, alpha_d, alpha_p, delta
        self.window_frames = float(window_frames)
        self.dd_alpha = dd_alpha
        self.xi_min = 10.0 ** (xi_min_db / 10.0)
        self.gain_floor = 10.0 ** (gain_floor_db / 20.0)
        self.register_buffer("freq_kernel", torch.tensor([[[0.25, 0.5, 0.25]]]))

    def forward(self, power, smoothed, s_min, s_tmp, noise, presence, clean_prev, count):
        first = count < 1.5  # frame 0 is half silence (STFT start): start the trackers on frame 1
        sf = nn.functional.conv1d(nn.functional.pad(power.unsqueeze(1), (1, 1), mode="replicate"), self.freq_kernel)
        sf = sf.squeeze(1)
        s = torch.where(first, sf, self.alpha_s * smoothed + (1.0 - self.alpha_s) * sf)
        s_min_new = torch.where(first, s, torch.minimum(s_min, s))
        s_tmp_new = torch.where(first, s, torch.minimum(s_tmp, s))
        restart = (torch.remainder(count + 1.0, self.window_frames) < 0.5) & ~first
        s_min_new = torch.where(restart, torch.minimum(s_tmp_new, s), s_min_new)
        s_tmp_new = torch.where(restart, s, s_tmp_new)
        speech = (s > self.delta * s_min_new).float()
        p = self.alpha_p * presence + (1.0 - self.alpha_p) * speech
        a_d = self.alpha_d + (1.0 - self.alpha_d) * p
        noise_new = torch.where(first, power, a_d * noise + (1.0 - a_d) * power)
        n = noise_new + EPS
        gamma = power / n
        xi = self.dd_alpha * clean_prev / n + (1.0 - self.dd_alpha) * torch.clamp(gamma - 1.0, min=0.0)
        xi = torch.clamp(xi, min=self.xi_min)
        gain = torch.clamp(xi / (1.0 + xi), min=self.gain_floor)
        clean = gain * gain * power
        return gain, s, s_min_new, s_tmp_new, noise_new, p, clean, count + 1.0


def _spec(module: nn.Module) -> dict:
    states = []
    for name in module.state_names:
        shape = [1, 1] if name == "count" else [1, N_BINS]
        states.append({"input": f"{name}_in", "output": f"{name}_out", "shape": shape, "init": 0.0})
    return {
        "sample_rate": SAMPLE_RATE,
        "streaming": True,
        "stft": {"n_fft": N_FFT, "hop_length": HOP, "window": "sqrt_hann"},
        "lookahead_frames": 0,
        "input": {"name": "power", "shape": [1, N_BINS], "feature": "power"},
        "output": {"name": "gain", "shape": [1, N_BINS], "kind": "mask"},
        "states": states,
    }


MODELS = {
    "spectral_subtraction": (
        SpectralSubtraction,
        "Spectral subtraction",
        "Classical power spectral subtraction (Berouti over-subtraction up to 2x on the smoothed power, -15 dB floor) with a "
        "minimum-statistics noise estimate (bias-compensated minimum over 1.5-3 s windows). 48 kHz, 20 ms frames, 10 ms hop.",
    ),
    "wiener": (
        WienerMCRA,
        "Wiener (MCRA)",
        "Classical Wiener filter with decision-directed a-priori SNR and MCRA noise tracking "
        "(minima-controlled recursive averaging). 48 kHz, 20 ms frames, 10 ms hop.",
    ),
}


def main() -> None:
    from .export import export_streaming, parity_frames

    frames = parity_frames(SAMPLE_RATE, N_FFT, HOP, "sqrt_hann", feature="power", seconds=4.0)
    for name, (cls, display, description) in MODELS.items():
        module = cls().eval()
        fields = _spec(module) | {
            "display_name": display,
            "description": description,
            "licence": "GPL-3.0-or-later",
            "training": {"data": "none (classical signal processing, no training)", "parameters": 0},
        }
        path = export_streaming(module, name, fields, frames)
        print(f"exported {path}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
