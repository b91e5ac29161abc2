"""The six seed architectures, each with a training loss (``loss``), a whole-signal enhancer for the
dev score (``enhance``), and the module that is exported (``export_module``).

Shared framing: 16 kHz, 512-point sqrt-Hann STFT, hop 256 (the engine's ``StreamingSTFT``; frame t
ends at sample (t + 1) * 256). Every spectral model ends in a real gain per bin (a mask applied to
the noisy spectrum, so the noisy phase is kept) whatever it predicts inside; the FCN works on the
waveform. Normalisation constants are fixed numbers (not fitted), so training and export agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import fullband

SAMPLE_RATE, N_FFT, HOP = 16000, 512, 256
N_BINS = N_FFT // 2 + 1
EPS = 1e-5
LOGMAG_MEAN, LOGMAG_STD = -5.0, 2.5  # log(|X| + 1e-5) of our mixtures is roughly -11.5 .. +3


def spec(x: torch.Tensor) -> torch.Tensor:
    """(B, N) -> complex (B, T, F), the engine's framing."""
    return fullband.stft(x, N_FFT, HOP)


def wave(s: torch.Tensor) -> torch.Tensor:
    """Inverse of ``spec`` (output delayed by N_FFT - HOP samples, as the engine's)."""
    return fullband.istft(s, N_FFT, HOP)


def logmag(mag: torch.Tensor) -> torch.Tensor:
    return (torch.log(mag + EPS) - LOGMAG_MEAN) / LOGMAG_STD


def mask_from_logmag(pred_norm: torch.Tensor, noisy_norm: torch.Tensor) -> torch.Tensor:
    """A gain in [0, 1] from predicted and noisy normalised log magnitudes."""
    return torch.exp((pred_norm - noisy_norm) * LOGMAG_STD).clamp(0.0, 1.0)


def target_logmag(clean_mag: torch.Tensor, noisy_norm: torch.Tensor, floor_db: float = 25.0) -> torch.Tensor:
    """The normalised clean log magnitude, floored at ``floor_db`` below the noisy one. Below that
    the gain is ~0 anyway, and the exact level of near-silence is unpredictable: unfloored, those
    bins dominate a log-domain MSE and the model learns little else."""
    return torch.maximum(logmag(clean_mag), noisy_norm - floor_db / 20.0 * math.log(10.0) / LOGMAG_STD)


def compressed_mag_loss(est_mag, ref_mag, c=0.3):
    return F.l1_loss((est_mag + 1e-8) ** c, (ref_mag + 1e-8) ** c)


def sdw_loss(m, noisy_spec, clean_spec, alpha=0.7, normalise=True):
    """Speech-distortion-weighted loss (Xia et al., ICASSP 2020): ``alpha`` x the speech the gain
    removes plus ``1 - alpha`` x the noise it lets through, as energies of level-normalised
    magnitudes. Its optimum per bin is a Wiener-like gain alpha S^2 / (alpha S^2 + (1 - alpha) N^2),
    so alpha > 0.5 trades some noise for less damage to speech; loud bins weigh most, as in SI-SDR.
    ``m`` (..., T, F) real gains; the spectra complex, same shape."""
    g = level_gain(noisy_spec) if normalise else 1.0
    speech, noise = clean_spec.abs() * g, (noisy_spec - clean_spec).abs() * g
    return alpha * torch.mean(((1.0 - m) * speech) ** 2) + (1.0 - alpha) * torch.mean((m * noise) ** 2)


def level_gain(noisy: torch.Tensor) -> torch.Tensor:
    """Per example, the factor that brings the noisy magnitude (or spectrum) to unit RMS."""
    return 1.0 / (noisy.abs().pow(2).mean(tuple(range(1, noisy.dim())), keepdim=True).sqrt() + 1e-4)


def level_normalise(noisy, clean):
    """Loss weights independent of the level: each example scaled to unit noisy RMS (for losses only)."""
    g = level_gain(noisy)
    return noisy * g, clean * g


class SpectralMaskModel(nn.Module):
    """Base of the STFT models: ``masks(mag) -> (B, T, F)`` in [0, 1]."""

    streaming = True

    sdw_weight, sdw_alpha = 0.0, 0.7  # set from the recipe's "sdw_loss" / "sdw_alpha" (0: not used)
    aux_weight = 0.0  # DDAE and CR-CED: set from the recipe's "aux_mask_loss"

    def masks(self, mag: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def enhance(self, noisy: torch.Tensor) -> torch.Tensor:
        s = spec(noisy)
        return wave(s * self.masks(s.abs()))

    def loss(self, noisy, clean):
        s, c = spec(noisy), spec(clean)
        m = self.masks(s.abs())
        n_, c_ = level_normalise(s.abs(), c.abs())
        return compressed_mag_loss(m * n_, c_)


# ----------------------------------------------------------------------------- 5. DDAE (streaming)
class DDAE(SpectralMaskModel):
    """Deep denoising autoencoder (Lu et al., Interspeech 2013): fully connected layers map the
    log-power spectra of a few consecutive noisy frames to the clean log-power spectrum of the
    current one; MSE on log-power. Causal context (this frame and ``context - 1`` before it) so it
    can stream, as the hearing-aid seed project needed."""

    def __init__(self, context: int = 5, hidden: int = 512, layers: int = 3):
        super().__init__()
        self.context = context
        dims = [context * N_BINS] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(hidden, N_BINS)
        nn.init.zeros_(self.out.weight)  # starts as the identity (gain 1): training starts from "do no harm"
        nn.init.zeros_(self.out.bias)

    def _predict(self, lp_ctx: torch.Tensor) -> torch.Tensor:  # (..., context * F) normalised
        h = lp_ctx
        for layer in self.hidden:
            h = F.relu(layer(h))
        return lp_ctx[..., -N_BINS:] + self.out(h)  # the current noisy frame plus a correction

    def _log_power(self, mag):
        return logmag(mag)  # log|X| normalised: log-power up to a factor 2

    def _context(self, lp: torch.Tensor) -> torch.Tensor:
        pad = torch.full_like(lp[:, :1], float(logmag(torch.zeros(())))).expand(-1, self.context - 1, -1)
        x = torch.cat([pad, lp], 1)  # (B, T + c - 1, F)
        return x.unfold(1, self.context, 1).permute(0, 1, 3, 2).reshape(lp.shape[0], lp.shape[1], -1)

    def masks(self, mag):
        lp = self._log_power(mag)
        return mask_from_logmag(self._predict(self._context(lp)), lp)

    def loss(self, noisy, clean):
        s, c = spec(noisy), spec(clean)
        lp = self._log_power(s.abs())
        pred = self._predict(self._context(lp))
        loss = F.mse_loss(pred, target_logmag(c.abs(), lp))
        m = mask_from_logmag(pred, lp)
        if self.aux_weight:  # a log-domain MSE alone attenuates speech bins at random: also score the masked output
            n_, c_ = level_normalise(s.abs(), c.abs())
            loss = loss + self.aux_weight * compressed_mag_loss(m * n_, c_)
        if self.sdw_weight:
            loss = loss + self.sdw_weight * sdw_loss(m, s, c, self.sdw_alpha)
        return loss

    def predict_frame(self, ctx: torch.Tensor) -> torch.Tensor:  # (1, context, F) -> (1, 1, F)
        return self._predict(ctx.reshape(1, 1, -1))

    def export_module(self):
        return ContextStep(self, feature="power")


class ContextStep(nn.Module):
    """The streaming graph of a frame-context model (DDAE, CR-CED): one frame (power or magnitude,
    (1, 1, F)) and the last ``context - 1`` normalised log magnitudes -> gain, and the new history."""

    def __init__(self, net: nn.Module, feature: str):
        super().__init__()
        self.net, self.feature = net, feature

    def forward(self, frame, hist):
        lm = logmag(torch.sqrt(frame) if self.feature == "power" else frame)
        ctx = torch.cat([hist, lm], 1)  # (1, c, F)
        return mask_from_logmag(self.net.predict_frame(ctx), lm), ctx[:, 1:]

    def states(self):
        return [{"input": "hist_in", "output": "hist_out", "shape": [1, self.net.context - 1, N_BINS], "init": float(logmag(torch.zeros(())))}]


# -------------------------------------------------------------------------- 2. CR-CED (streaming)
class CRCED(SpectralMaskModel):
    """Cascaded redundant convolutional encoder-decoder (Park & Lee, Interspeech 2017): 8 noisy
    magnitude frames (this one and 7 before: causal) in as channels, convolutions along frequency
    only, the (18, 30, 8)-filter redundant blocks cascaded with skip connections, one output frame
    (the clean magnitude, here its normalised log); MSE loss."""

    def __init__(self, context: int = 8, repeats: int = 3, widths=(9, 5, 9), filters=(18, 30, 8)):
        super().__init__()
        self.context = context
        layers, c_in = [], context
        for _ in range(repeats):
            for w, c in zip(widths, filters):
                layers.append(nn.Sequential(nn.Conv1d(c_in, c, w, padding=w // 2, bias=False), nn.BatchNorm1d(c), nn.ReLU()))
                c_in = c
        self.layers = nn.ModuleList(layers)
        self.final = nn.Conv1d(c_in, 1, 129, padding=64)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)

    def _predict(self, ctx: torch.Tensor) -> torch.Tensor:  # (N, context, F) -> (N, F)
        h, skips = ctx, []
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i % 3 == 2:  # end of a redundant block: skip to the matching block on the way back
                if skips and skips[-1].shape == h.shape:
                    h = h + skips.pop()
                else:
                    skips.append(h)
        return ctx[:, -1] + self.final(h)[:, 0]  # the current noisy frame plus a correction

    def _context(self, lm: torch.Tensor) -> torch.Tensor:
        b, t, f = lm.shape
        pad = torch.full((b, self.context - 1, f), float(logmag(torch.zeros(()))), device=lm.device)
        x = torch.cat([pad, lm], 1).unfold(1, self.context, 1)  # (B, T, F, c)
        return x.permute(0, 1, 3, 2).reshape(b * t, self.context, f)

    def masks(self, mag):
        lm = logmag(mag)
        pred = self._predict(self._context(lm)).reshape(lm.shape)
        return mask_from_logmag(pred, lm)

    frames_per_step = 384  # frames are independent given their context: train on a random subset

    def loss(self, noisy, clean):
        s, c = spec(noisy), spec(clean)
        lm = logmag(s.abs())
        ctx = self._context(lm)
        target = target_logmag(c.abs(), lm).reshape(-1, N_BINS)
        pick = torch.randperm(ctx.shape[0], device=ctx.device)[: self.frames_per_step]
        pred = self._predict(ctx[pick])
        loss = F.mse_loss(pred, target[pick])
        m = mask_from_logmag(pred, lm.reshape(-1, N_BINS)[pick])
        g = level_gain(s)  # per example, before frames are picked
        s_, c_ = (s * g).reshape(-1, N_BINS)[pick], (c * g).reshape(-1, N_BINS)[pick]
        if self.aux_weight:  # as the DDAE: also score the masked output
            loss = loss + self.aux_weight * compressed_mag_loss(m * s_.abs(), c_.abs())
        if self.sdw_weight:
            loss = loss + self.sdw_weight * sdw_loss(m, s_, c_, self.sdw_alpha, normalise=False)
        return loss

    def predict_frame(self, ctx: torch.Tensor) -> torch.Tensor:  # (1, context, F) -> (1, 1, F)
        return self._predict(ctx)[:, None]

    def export_module(self):
        return ContextStep(self, feature="magnitude")


# ------------------------------------------------------------- patch models (offline, non-causal)
class PatchModel(SpectralMaskModel):
    """Works on patches of ``patch`` frames (the engine runs half-overlapping patches and
    cross-fades their gains), so it sees the future: offline only."""

    streaming = False
    patch = 64

    def patch_masks(self, mag_patch: torch.Tensor) -> torch.Tensor:  # (B, F, P) -> (B, F, P)
        raise NotImplementedError

    def masks(self, mag):
        """Whole signal, as the engine does it: half-overlapping patches, sin^2 cross-fade."""
        b, t, f = mag.shape
        p, h = self.patch, self.patch // 2
        n = max(1, math.ceil((t + h) / h))
        total = (n + 1) * h
        x = F.pad(mag.transpose(1, 2), (h, total - t - h))  # h silent frames first, as the engine's reset
        fade = torch.sin(torch.pi * (torch.arange(p, device=mag.device) + 0.5) / p) ** 2
        out = torch.zeros_like(x)
        for k in range(n):
            out[..., k * h : k * h + p] += fade * self.patch_masks(x[..., k * h : k * h + p])
        return out[..., h : h + t].transpose(1, 2)

    def loss(self, noisy, clean):
        s, c = spec(noisy), spec(clean)
        t = s.shape[1]
        start = int(torch.randint(0, max(1, t - self.patch + 1), ()))
        s, c = s[:, start : start + self.patch], c[:, start : start + self.patch]
        if s.shape[1] < self.patch:  # a short crop: silent frames after it, as the engine's flush
            s, c = (F.pad(v, (0, 0, 0, self.patch - v.shape[1])) for v in (s, c))
        loss = self.patch_loss(s.abs().transpose(1, 2), c.abs().transpose(1, 2))
        if self.sdw_weight:
            m = self.patch_masks(s.abs().transpose(1, 2)).transpose(1, 2)
            loss = loss + self.sdw_weight * sdw_loss(m, s, c, self.sdw_alpha)
        return loss

    def patch_loss(self, mag, clean_mag):
        m = self.patch_masks(mag)
        n_, c_ = level_normalise(mag, clean_mag)
        return compressed_mag_loss(m * n_, c_)

    def export_module(self):
        return PatchExport(self)


class PatchExport(nn.Module):
    def __init__(self, net: PatchModel):
        super().__init__()
        self.net = net

    def forward(self, magnitude):  # (1, 1, F, P)
        return self.net.patch_masks(magnitude[:, 0])[:, None]


# ------------------------------------------------------------------------------- 3. DnCNN (patch)
class DnCNN(PatchModel):
    """DnCNN (Zhang et al. 2017) on log-magnitude spectrogram patches: conv + BN + ReLU stack that
    predicts the noise (residual learning); clean = noisy - residual; log-cosh loss; the noisy
    phase is kept."""

    def __init__(self, channels: int = 24, depth: int = 7):
        super().__init__()
        layers = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
        layers.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def _clean(self, lm):  # (B, F, P) normalised -> (B, F, P)
        return lm - self.body(lm[:, None])[:, 0]

    def patch_masks(self, mag):
        lm = logmag(mag)
        return mask_from_logmag(self._clean(lm), lm)

    def patch_loss(self, mag, clean_mag):
        lm = logmag(mag)
        d = self._clean(lm) - target_logmag(clean_mag, lm)
        return torch.mean(d + F.softplus(-2.0 * d) - math.log(2.0))  # log(cosh(d)), stable


# -------------------------------------------------------------------- 4. ResNet-encoder U-Net (patch)
class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None if stride == 1 and c_in == c_out else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResUNet(PatchModel):
    """U-Net whose encoder is a small ResNet (BasicBlocks, stride-2 stages), trained from scratch
    on log-magnitude patches (256 bins: the Nyquist bin takes the gain of the bin below), decoder
    of upsampling + skip concatenation; sigmoid gain; compressed-magnitude loss."""

    def __init__(self, widths=(16, 32, 64, 96)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.enc = nn.ModuleList([BasicBlock(widths[0], widths[0], 1)] + [BasicBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:])])
        self.dec = nn.ModuleList(
            nn.Sequential(nn.Conv2d(b + a, a, 3, padding=1, bias=False), nn.BatchNorm2d(a), nn.ReLU())
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.head = nn.Conv2d(widths[0], 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 3.0)  # gain ~0.95 at the start

    def patch_masks(self, mag):
        x = logmag(mag[:, : N_BINS - 1])[:, None]  # (B, 1, 256, P)
        skips, h = [], self.stem(x)
        for block in self.enc:
            h = block(h)
            skips.append(h)
        for i in range(len(self.dec) - 1, -1, -1):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = self.dec[i](torch.cat([h, skips[i]], 1))
        m = torch.sigmoid(self.head(h))[:, 0]
        return torch.cat([m, m[:, -1:]], 1)


# ------------------------------------------------------------- 6. Diffusion on mel spectrograms
def mel_matrix(n_mels: int) -> torch.Tensor:
    from plugin_host.features import mel_filterbank

    return torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, fmin=0.0))


class TimeEmbedding(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):  # (B,) float in [0, 1]
        half = self.dim // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
        ang = t[:, None] * 1000.0 * freqs[None]
        return self.mlp(torch.cat([torch.sin(ang), torch.cos(ang)], 1))


class EpsBlock(nn.Module):
    def __init__(self, c_in, c_out, t_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.t = nn.Linear(t_dim, c_out)
        self.norm1, self.norm2 = nn.GroupNorm(8, c_out), nn.GroupNorm(8, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, temb):
        h = F.silu(self.norm1(self.conv1(x))) + self.t(temb)[:, :, None, None]
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class EpsNet(nn.Module):
    """The noise predictor: a two-level U-Net over (x_t, noisy mel) with a time embedding."""

    def __init__(self, width=32, t_dim=64):
        super().__init__()
        self.temb = TimeEmbedding(t_dim)
        self.inp = nn.Conv2d(2, width, 3, padding=1)
        self.e1 = EpsBlock(width, width, t_dim)
        self.e2 = EpsBlock(width, 2 * width, t_dim)
        self.mid = EpsBlock(2 * width, 2 * width, t_dim)
        self.d2 = EpsBlock(4 * width, width, t_dim)
        self.d1 = EpsBlock(2 * width, width, t_dim)
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x_t, cond, t):  # (B, M, P), (B, M, P), (B,)
        temb = self.temb(t)
        h0 = self.e1(self.inp(torch.stack([x_t, cond], 1)), temb)
        h1 = self.e2(F.avg_pool2d(h0, 2), temb)
        h = self.mid(F.avg_pool2d(h1, 2), temb)
        h = self.d2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h1], 1), temb)
        h = self.d1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h0], 1), temb)
        return self.out(h)[:, 0]


class MelDiffusion(PatchModel):
    """Conditional denoising diffusion (DDPM, cosine schedule, epsilon prediction) that generates
    the clean log-mel patch given the noisy one; sampled with a deterministic DDIM of a few steps
    from seeded noise (an input of the exported graph, so the engine controls it). Back to audio:
    the clean/noisy mel ratio becomes a gain per bin (each bin takes the mel bands covering it,
    weighted by the filters), applied with the noisy phase."""

    def __init__(
        self, n_mels: int = 64, steps: int = 200, sample_steps: int = 6, width: int = 32, target: str = "mel", floor_db: float = 30.0, sample_start: float = 1.0
    ):
        super().__init__()
        if target not in ("mel", "log_gain"):
            raise ValueError(f"target {target!r} not in ['log_gain', 'mel']")
        if not (0.0 < sample_start <= 1.0) or (sample_start < 1.0 and target != "log_gain"):
            raise ValueError(f"sample_start {sample_start!r}: 1.0, or in (0, 1) with target 'log_gain'")
        # The sampler starts at t = sample_start x steps: from pure noise (1.0), or (SDEdit-style, log_gain
        # only) from "keep everything" (x = 1) noised to that step, so a few steps refine rather than invent.
        self.sample_start = sample_start
        self.n_mels, self.steps, self.sample_steps = n_mels, steps, sample_steps
        # "mel": x0 is the clean normalised log-mel itself. "log_gain": x0 is the clean minus the noisy
        # log-mel, floored at floor_db below and capped at 0 (clean can only be quieter), mapped to
        # [-1, 1] (1 = keep, -1 = floor_db cut): the generated mel is still noisy + x0, but silence's
        # unpredictable level and "louder than the mixture" are no longer asked of a few-step sampler.
        self.target = target
        self.floor = floor_db / 10.0 * math.log(10.0) / (2 * LOGMAG_STD)  # in normalised log-mel units
        fb = mel_matrix(n_mels)
        self.register_buffer("fb", fb)  # (M, F)
        self.register_buffer("to_bins", fb / fb.sum(0, keepdim=True).clamp_min(1e-9))
        s = torch.arange(steps + 1, dtype=torch.float64) / steps
        abar = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        abar = (abar / abar[0]).clamp(1e-5, 1.0)[1:]
        self.register_buffer("abar", abar.float())  # alpha-bar at t = 1..steps
        self.eps = EpsNet(width)

    def _mel(self, mag):  # (B, F, P) -> normalised log-mel power (B, M, P)
        return (torch.log(torch.einsum("mf,bfp->bmp", self.fb, mag * mag) + 1e-10) - 2 * LOGMAG_MEAN) / (2 * LOGMAG_STD)

    def training_target(self, mag, clean_mag):
        """(x0, cond): what the sampler learns to generate, and its condition (the noisy log-mel)."""
        x0, cond = self._mel(clean_mag), self._mel(mag)
        if self.target == "log_gain":
            x0 = 1.0 + 2.0 * (x0 - cond).clamp(-self.floor, 0.0) / self.floor
        return x0, cond

    def patch_loss(self, mag, clean_mag):
        x0, cond = self.training_target(mag, clean_mag)
        b = x0.shape[0]
        t = torch.randint(0, self.steps, (b,), device=x0.device)
        a = self.abar[t][:, None, None]
        noise = torch.randn_like(x0)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return F.mse_loss(self.eps(x_t, cond, (t.float() + 1) / self.steps), noise)

    def sample(self, cond, z):
        """Deterministic DDIM (eta 0) over ``sample_steps`` evenly spaced steps, from noise ``z``
        (with ``sample_start`` < 1: from the identity, noised by ``z`` to the first step)."""
        first = round(self.sample_start * self.steps) - 1
        ts = np.linspace(first, 0, self.sample_steps).round().astype(int).tolist()
        x = z
        if self.sample_start < 1.0:
            a = self.abar[first]
            x = a.sqrt() * torch.ones_like(z) + (1 - a).sqrt() * z
        for i, t in enumerate(ts):
            a = self.abar[t]
            eps = self.eps(x, cond, torch.full((x.shape[0],), (t + 1) / self.steps, device=x.device))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(*((-1.0, 1.0) if self.target == "log_gain" else (-6.0, 6.0)))
            if i + 1 < len(ts):
                a_next = self.abar[ts[i + 1]]
                x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
            else:
                x = x0
        return x

    def gains(self, mag, z):
        cond = self._mel(mag)
        x0 = self.sample(cond, z)
        log_ratio = (x0 - 1.0) / 2.0 * self.floor if self.target == "log_gain" else x0 - cond  # clean - noisy log-mel
        g_mel = torch.exp(log_ratio * LOGMAG_STD).clamp(0.0, 1.0)  # amplitude ratio per band
        return torch.einsum("mf,bmp->bfp", self.to_bins, g_mel).clamp(0.0, 1.0)

    def patch_masks(self, mag):  # training-time whole-signal path: fresh noise each patch
        z = torch.randn(mag.shape[0], self.n_mels, mag.shape[-1], device=mag.device)
        return self.gains(mag, z)

    def export_module(self):
        return DiffusionExport(self)


class DiffusionExport(nn.Module):
    def __init__(self, net: MelDiffusion):
        super().__init__()
        self.net = net

    def forward(self, magnitude, noise):  # (1, 1, F, P), (1, 1, M, P)
        return self.net.gains(magnitude[:, 0], noise[:, 0])[:, None]


# ------------------------------------------------------- 1. FCN with a deep feature loss (waveform)
class LossNet(nn.Module):
    """The feature-loss network: strided 1-D convolutions on the waveform, trained first to tell
    the corpus's noise labels and speech apart, then frozen; its layer activations define the loss."""

    def __init__(self, n_classes: int, width=(16, 16, 32, 32, 64, 64, 64)):
        super().__init__()
        layers, c_in = [], 1
        for c in width:
            layers.append(nn.Sequential(nn.Conv1d(c_in, c, 5, stride=2, padding=2), nn.BatchNorm1d(c), nn.LeakyReLU(0.2)))
            c_in = c
        self.layers = nn.ModuleList(layers)
        self.classify = nn.Linear(c_in, n_classes)

    def features(self, x):  # (B, N) -> list of activations
        h, out = x[:, None], []
        for layer in self.layers:
            h = layer(h)
            out.append(h)
        return out

    def forward(self, x):
        return self.classify(self.features(x)[-1].mean(-1))


class FCN(nn.Module):
    """Context-aggregation network (Germain, Chen & Koltun 2018): dilated 1-D convolutions on the
    waveform (dilation doubling to 128, then two undilated layers and a 1x1 output), no pooling,
    non-causal (receptive field 1023 samples, 32 ms each side); trained with the deep feature loss."""

    streaming = False

    def __init__(self, channels: int = 32, dilations=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1)):
        super().__init__()
        layers, c_in = [], 1
        for d in dilations:
            layers.append(nn.Conv1d(c_in, channels, 3, padding=d, dilation=d))
            c_in = channels
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv1d(channels, 1, 1)
        self.radius = sum(dilations)

    def forward(self, x):  # (B, N) -> (B, N)
        h = x[:, None] * 10.0  # our mixtures sit around -25 dBFS
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
        return x - self.out(h)[:, 0] / 10.0  # predicts what to take away

    def enhance(self, noisy):
        y = self.forward(noisy)
        return F.pad(y, (N_FFT - HOP, 0))[:, : noisy.shape[-1]]  # same delay as the STFT models, for scoring

    def export_module(self):
        return WaveExport(self)


class WaveExport(nn.Module):
    def __init__(self, net: FCN):
        super().__init__()
        self.net = net

    def forward(self, audio):  # (1, 1, N)
        return self.net(audio[:, 0])[:, None]


def feature_loss(lossnet: LossNet, weights: list[float], est, ref):
    total = est.new_zeros(())
    for w, a, b in zip(weights, lossnet.features(est), lossnet.features(ref)):
        total = total + w * F.l1_loss(a, b)
    return total


ARCHITECTURES = {"ddae": DDAE, "crced": CRCED, "dncnn": DnCNN, "resunet": ResUNet, "mel_diffusion": MelDiffusion, "fcn_dfl": FCN}
