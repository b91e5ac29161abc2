"""NoiseNil's full-band causal denoiser: ERB-band gains plus a deep filter on the low bins.

The design follows DeepFilterNet's two stages (Schröter et al. 2022/2023), sized for two CPU cores:
- 48 kHz, 20 ms sqrt-Hann frames, 10 ms hop: the engine's own STFT, so 10 ms algorithmic latency
  and no lookahead (``lookahead=1`` lets the input layer see the next frame too: 20 ms);
- features per frame: 32 ERB-band log powers and the unit-normalised complex spectrum of the lowest
  96 bins (0-4.75 kHz), both normalised by causal exponential means (1 s), which carry the noise
  floor and level over many seconds without a recurrent layer; ``logmag_bins=N`` adds the log
  magnitude of each of the lowest N bins against its running mean (the per-bin harmonic detail
  that 2-bin ERB bands average away and that a linear layer cannot get from real and imaginary
  parts; 0, none, in the shipped weights);
- ``pitch=True`` adds harmonicity inputs: the low band's normalised autocorrelation at pitch
  periods of 2.5-16.7 ms over the last 20 ms (RNNoise / PercepNet's pitch correlation, from a
  12 kHz signal rebuilt from the low bins with its own overlap-add state);
- trunk: a causal temporal convolution network (dilated 1-D convolutions over frames, residual).
  On CPU it trains several times faster than a GRU of the same width, because every layer is one
  large matrix product over all frames instead of a sequential loop;
- heads: 32 sigmoid gains in [0, 1] applied to the ERB bands (bounded: they can only attenuate),
  and a 3-tap complex deep filter over the current and two past frames of the low bins, added to
  the gain-masked spectrum (zero-initialised, so training starts from the gains alone). The deep
  filter removes noise between the harmonics that band gains cannot reach.

``FullBandNet.forward_sequence`` runs whole clips for training; ``FullBandStep`` wraps the same
weights as one frame in, one frame out with every state explicit, for ONNX export and the engine.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SAMPLE_RATE = 48000
N_FFT = 960
HOP = 480
N_BINS = N_FFT // 2 + 1
NORM_ALPHA = math.exp(-HOP / (SAMPLE_RATE * 1.0))  # 1 s time constant
LOGIT_CLIP = math.log((1 - 1e-6) / 1e-6)  # logits read by the context head: those of gains in [1e-6, 1 - 1e-6]
# Start values of the two running means (band power in dB of the unscaled STFT, low-bin magnitude):
# about a quiet room's level, so the first second after a reset is neither loud nor silent.
ERB_INIT_DB = -40.0
UNIT_INIT = 0.1
# The noise-floor features (``noise_floor=True``): each band's and low bin's power smoothed over about
# two frames, and its floor, the smoothed level's minimum allowed to rise 0.05 dB a frame (5 dB/s;
# minimum statistics, Martin 2001, as a running minimum). Start values: the smoothing at -40 dB like
# the band means; the floor far above any signal, so the first frame sets it.
FLOOR_SMOOTH = 0.5
FLOOR_RISE_DB = 0.05
FLOOR_SMOOTH_INIT = 1e-4
FLOOR_INIT_DB = 200.0
# The harmonicity inputs (``pitch=True``): the low bins (0-4.75 kHz) turned back into a 12 kHz signal
# (inverse DFT at every 4th sample, synthesis window, overlap-add: 120 samples a frame, completed one
# hop late), and its normalised autocorrelation over the last 20 ms at every lag from 2.5 ms
# (400 Hz) to 16.7 ms (60 Hz), as RNNoise and PercepNet's pitch correlation: how periodic the
# recent signal is at each candidate pitch period. A single 20 ms frame's spectrum resolves no
# harmonics below about 100 Hz (50 Hz bins); the autocorrelation looks back 37 ms.
PITCH_DECIM = 4
PITCH_SEG = HOP // PITCH_DECIM  # completed samples a frame at 12 kHz
PITCH_WIN = 2 * PITCH_SEG  # the correlation window: the last 20 ms
PITCH_MIN_LAG, PITCH_MAX_LAG = 30, 200  # 400 Hz and 60 Hz at 12 kHz
PITCH_LAGS = PITCH_MAX_LAG - PITCH_MIN_LAG + 1
PITCH_HIST = PITCH_WIN + PITCH_MAX_LAG - PITCH_SEG  # samples carried between frames


def erb_widths(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, bands: int = 32, min_bins: int = 2) -> list[int]:
    """Bins per ERB band: DeepFilterNet's layout (the engine's libDF-exact copy), summing to n_fft // 2 + 1."""
    from plugin_host.deepfilternet import erb_widths as libdf_widths

    return [int(w) for w in libdf_widths(sample_rate, n_fft, bands, min_bins)]


def erb_matrices(widths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(bins x bands) mean-power matrix and (bands x bins) expansion matrix."""
    n = sum(widths)
    avg = torch.zeros(n, len(widths))
    expand = torch.zeros(len(widths), n)
    start = 0
    for b, w in enumerate(widths):
        avg[start : start + w, b] = 1.0 / w
        expand[b, start : start + w] = 1.0
        start += w
    return avg, expand


def causal_ema(x: torch.Tensor, init: torch.Tensor, alpha: float, block: int = 128) -> torch.Tensor:
    """``m_t = (1 - alpha) x_t + alpha m_{t-1}`` with ``m_{-1} = init`` over the frames of (B, T, F) ``x``:
    the streaming step's running mean, as one small matrix product per block of frames (a
    frame-by-frame loop is hundreds of tiny kernel launches per batch on a GPU)."""
    b, t, f = x.shape
    k = torch.arange(block, device=x.device, dtype=x.dtype)
    lag = k[:, None] - k[None, :]
    weights = torch.where(lag >= 0, (1 - alpha) * alpha ** lag.clamp(min=0), torch.zeros((), dtype=x.dtype, device=x.device))
    decay = alpha ** (k + 1)  # what the state before the block still weighs at each frame of it
    out, state = [], init
    for start in range(0, t, block):
        chunk = x[:, start : start + block]
        n = chunk.shape[1]
        m = torch.einsum("ts,bsf->btf", weights[:n, :n], chunk) + decay[:n, None] * state[:, None, :]
        out.append(m)
        state = m[:, -1]
    return torch.cat(out, 1) if out else x.new_zeros(b, 0, f)


def running_floor(db: torch.Tensor, init: torch.Tensor, rise: float = FLOOR_RISE_DB) -> torch.Tensor:
    """``f_t = min(db_t, f_{t-1} + rise)`` with ``f_{-1} = init`` over the frames of (B, T, F) ``db``,
    unrolled: ``f_t = rise * t + min(init + rise, min_{s <= t} (db_s - rise * s))``, one cumulative
    minimum instead of a frame-by-frame loop."""
    t = torch.arange(db.shape[1], device=db.device, dtype=db.dtype)[None, :, None] * rise
    lowest = torch.cummin(db - t, dim=1).values
    return t + torch.minimum(lowest, (init + rise)[:, None, :])


def pitch_synthesis(bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(bins, 2 * PITCH_SEG) matrices taking a frame's lowest ``bins`` bins (real, imaginary parts)
    to its windowed samples at every PITCH_DECIM-th sample: the inverse real DFT restricted to
    those bins, times the sqrt-Hann synthesis window (overlap-added by the caller)."""
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = (torch.arange(2 * PITCH_SEG, dtype=torch.float64) * PITCH_DECIM)[None]
    window = torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * n / N_FFT))
    weight = torch.where(k == 0, 1.0, 2.0) / N_FFT
    phase = 2 * math.pi * k * n / N_FFT
    return (weight * torch.cos(phase) * window).float(), (-weight * torch.sin(phase) * window).float()


def pitch_correlation(window: torch.Tensor) -> torch.Tensor:
    """(N, PITCH_WIN + PITCH_MAX_LAG) signals at 12 kHz, oldest first -> (N, PITCH_LAGS): the
    normalised correlation of the last PITCH_WIN samples with the same span lag samples earlier,
    lags PITCH_MIN_LAG .. PITCH_MAX_LAG, in [-1, 1] (0 where either span is silent)."""
    n = window.shape[0]
    x = window[:, PITCH_MAX_LAG:]
    # the cross-correlation at every shift s = PITCH_MAX_LAG - lag, one group per signal
    num = F.conv1d(window.unsqueeze(0), x.unsqueeze(1), groups=n)[0]  # (N, PITCH_MAX_LAG + 1)
    c = F.pad(torch.cumsum(window * window, -1), (1, 0))
    energy = (c[:, PITCH_WIN:] - c[:, : PITCH_MAX_LAG + 1]).clamp_min(0.0)  # of each shifted span
    r = num / torch.sqrt(energy[:, -1:] * energy + 1e-20)
    return r[:, :PITCH_LAGS].flip(-1)


def grow_state_dict(net: FullBandNet, old: dict) -> dict:
    """Weights of a smaller FullBandNet (fewer channels, fewer trailing layers) placed in ``net`` so
    that ``net`` computes exactly the same function (Net2Net-style growth, Chen et al. 2016): old
    weights fill the top-left blocks; what feeds the old channels from new ones, the heads' new
    inputs, the input layer's weights from appended input features (``logmag_bins``), and the
    convolutions of appended layers start at zero (an appended residual layer is then the
    identity); the new channels' own inputs start from ``net``'s fresh random weights, so they
    learn as soon as the zeroed weights move."""
    new = {k: v.clone() for k, v in net.state_dict().items()}
    c_old = old["inp.weight"].shape[0]
    layers_old = sum(1 for k in old if k.startswith("convs.") and k.endswith(".weight"))
    if old["inp.weight"].shape[2] > net.inp.weight.shape[2]:
        raise ValueError(f"cannot shrink the lookahead: checkpoint looks {old['inp.weight'].shape[2] - 1} frames ahead, net {net.lookahead}")
    if old["inp.weight"].shape[1] > net.inp.weight.shape[1]:
        raise ValueError(f"cannot shrink the inputs: checkpoint has {old['inp.weight'].shape[1]} input features, net {net.inp.weight.shape[1]}")
    if c_old > net.channels or layers_old > len(net.dilations):
        raise ValueError(f"cannot shrink: checkpoint has {c_old} channels, {layers_old} layers; net has {net.channels}, {len(net.dilations)}")
    for i in range(layers_old, len(net.dilations)):
        new[f"convs.{i}.weight"].zero_()
        new[f"convs.{i}.bias"].zero_()
    for key, value in old.items():
        target = new[key]
        if target.shape == value.shape:
            target.copy_(value)
            continue
        if key.startswith("convs.") and key.endswith(".weight"):
            target[:c_old, c_old:] = 0.0  # the old channels are not fed by the new ones
            target[:c_old, :c_old] = value
        elif key in ("bin_head.0.weight", "bin_freq.0.weight") and target.shape[0] == value.shape[0] and target.shape[2:] == value.shape[2:]:
            # inputs appended (the trunk's channels first, then the features; or a channel along
            # frequency): the old inputs keep their weights, the new ones start at zero
            if key == "bin_head.0.weight" and c_old != net.channels:
                raise ValueError(f"cannot grow the bin head's inputs and the trunk's channels at once ({c_old} -> {net.channels})")
            target.zero_()
            target[:, : value.shape[1]] = value
        elif key.startswith(("gain_head", "df_head")) and key.endswith(".weight"):
            target[:, c_old:] = 0.0
            target[:, :c_old] = value
        elif key == "inp.weight":  # more channels, inputs (appended) and/or lookahead taps: the old taps see the same frames
            target[: value.shape[0]] = 0.0
            target[: value.shape[0], : value.shape[1], : value.shape[2]] = value
        else:  # biases, PReLU slopes: along the output channels
            target[: value.shape[0]] = value
    return new


class FullBandNet(nn.Module):
    def __init__(self, channels: int = 128, dilations=(1, 2, 4, 8, 16, 32, 64, 1), kernel: int = 3, bands: int = 32, df_bins: int = 96, df_order: int = 3, deep_filter: bool = True, lookahead: int = 0, logmag_bins: int = 0, bin_gains: int = 0, bin_hidden: int = 0, bin_conv: int = 0, noise_floor: bool = False, gru: int = 0, pitch: bool = False, bin_context: int = 0, bin_context_hidden: int = 256):
        super().__init__()
        if lookahead not in (0, 1, 2):
            raise ValueError(f"lookahead {lookahead!r} not in [0, 1, 2] (frames of 10 ms)")
        self.lookahead = int(lookahead)
        if not 0 <= int(logmag_bins) <= df_bins:
            raise ValueError(f"logmag_bins {logmag_bins!r} not in [0, {df_bins}] (the deep-filter bins, whose running mean it shares)")
        self.logmag_bins = int(logmag_bins)
        if not 0 <= int(bin_gains) <= df_bins:
            raise ValueError(f"bin_gains {bin_gains!r} not in [0, {df_bins}] (the deep-filter bins, whose features it reads)")
        self.bin_gains, self.bin_hidden, self.bin_conv = int(bin_gains), int(bin_hidden), int(bin_conv)
        if self.bin_conv and not (self.bin_gains and self.logmag_bins >= self.bin_gains):
            raise ValueError(f"bin_conv {bin_conv!r} needs bin_gains > 0 and logmag_bins >= bin_gains (it reads each bin's log magnitude); got bin_gains {bin_gains!r}, logmag_bins {logmag_bins!r}")
        self.bin_context, self.bin_context_hidden = int(bin_context), int(bin_context_hidden)
        if self.bin_context == 1 or self.bin_context < 0:
            raise ValueError(f"bin_context {bin_context!r} must be 0 (none) or >= 2 (frames of context, this one included)")
        if self.bin_context and not (self.bin_gains and self.logmag_bins >= self.bin_gains and self.bin_context_hidden > 0 and not lookahead):
            raise ValueError(
                f"bin_context {bin_context!r} needs bin_gains > 0, logmag_bins >= bin_gains, bin_context_hidden > 0 and no lookahead; "
                f"got bin_gains {bin_gains!r}, logmag_bins {logmag_bins!r}, bin_context_hidden {bin_context_hidden!r}, lookahead {lookahead!r}"
            )
        self.deep_filter = bool(deep_filter)
        self.noise_floor = bool(noise_floor)
        self.pitch = bool(pitch)
        if int(gru) < 0:
            raise ValueError(f"gru {gru!r} must be >= 0 (units of the recurrent layer after the trunk, 0: none)")
        self.gru_units = int(gru)
        self.channels, self.dilations, self.kernel = channels, tuple(dilations), kernel
        self.bands, self.df_bins, self.df_order = bands, df_bins, df_order
        avg, expand = erb_matrices(erb_widths(bands=bands))
        self.register_buffer("erb_avg", avg)
        self.register_buffer("erb_expand", expand)
        self.register_buffer("erb_init", torch.full((bands,), ERB_INIT_DB))
        self.register_buffer("unit_init", torch.full((df_bins,), UNIT_INIT))
        if self.noise_floor:
            self.register_buffer("floor_smooth_init", torch.full((bands + df_bins,), FLOOR_SMOOTH_INIT))
            self.register_buffer("floor_init", torch.full((bands + df_bins,), FLOOR_INIT_DB))
        if self.pitch:
            pitch_re, pitch_im = pitch_synthesis(df_bins)
            self.register_buffer("pitch_re", pitch_re, persistent=False)
            self.register_buffer("pitch_im", pitch_im, persistent=False)
        # the input layer sees frames t .. t + lookahead; the trunk after it is causal
        self.inp = nn.Conv1d(self.input_channels, channels, 1 + self.lookahead)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d) for d in self.dilations)
        self.acts = nn.ModuleList(nn.PReLU(channels) for _ in self.dilations)
        if self.gru_units:
            # a recurrent layer after the trunk, added back through a projection that starts at
            # zero (the trunk's function at step 0): a memory with no horizon and gates, next to
            # the convolutions' fixed 2.6 s window
            self.gru = nn.GRU(channels, self.gru_units, batch_first=True)
            self.gru_proj = nn.Conv1d(self.gru_units, channels, 1)
            nn.init.zeros_(self.gru_proj.weight)
            nn.init.zeros_(self.gru_proj.bias)
        self.gain_head = nn.Conv1d(channels, bands, 1)
        self.df_head = nn.Conv1d(channels, df_bins * df_order * 2, 1)
        nn.init.zeros_(self.df_head.weight)  # training starts from the gains alone
        nn.init.zeros_(self.df_head.bias)
        if self.bin_gains:
            # per-bin gains on the lowest bins: a logit added to each bin's band-gain logit, read from
            # the trunk and from the frame's own input features (the per-bin detail the trunk's
            # channels average away); zero at the start: the band gains' function
            # (``bin_hidden``: through a hidden layer of that many units and a PReLU first)
            c_in = channels + self.input_channels
            if self.bin_hidden:
                self.bin_head = nn.Sequential(nn.Conv1d(c_in, self.bin_hidden, 1), nn.PReLU(self.bin_hidden), nn.Conv1d(self.bin_hidden, self.bin_gains, 1))
            else:
                self.bin_head = nn.Sequential(nn.Conv1d(c_in, self.bin_gains, 1))
            nn.init.zeros_(self.bin_head[-1].weight)
            nn.init.zeros_(self.bin_head[-1].bias)
        if self.bin_conv:
            # a convolution along frequency over the low bins (kernels of 7 then 5 bins: 550 Hz seen
            # around each bin): from each bin's log magnitude, its logit so far and its band's
            # logit (and with ``noise_floor`` its level above its noise floor), a further logit per
            # bin, with the same weights at every bin. Whether a bin is a harmonic peak or the
            # trough between two is a local pattern along frequency, which the per-bin head above
            # must learn anew at each of its bins; zero at the start
            c = self.bin_conv
            self.bin_freq = nn.Sequential(nn.Conv1d(self.bin_freq_inputs, c, 7, padding=3), nn.PReLU(c), nn.Conv1d(c, c, 5, padding=2), nn.PReLU(c), nn.Conv1d(c, 1, 1))
            nn.init.zeros_(self.bin_freq[-1].weight)
            nn.init.zeros_(self.bin_freq[-1].bias)
        if self.bin_context:
            # a context head over the low bins: each bin's log magnitude in this frame and the
            # ``bin_context - 1`` before it (a causal convolution along time, 96 bins in), with
            # the bins' logits so far and the trunk's output, through one hidden layer, moves each
            # low bin's logit once more. The trunk squeezes every input into its 128 channels, so
            # the per-bin pattern over the last frames (a harmonic that persists, a trough that
            # stays empty) reaches the gains only through this head; zero at the start
            n, c = self.bin_gains, self.bin_context_hidden
            self.ctx_time = nn.Conv1d(n, c, self.bin_context)
            self.ctx_now = nn.Conv1d(n + channels, c, 1, bias=False)
            self.ctx_mid = nn.Conv1d(c, c, 1)
            self.ctx_out = nn.Conv1d(c, n, 1)
            nn.init.zeros_(self.ctx_out.weight)
            nn.init.zeros_(self.ctx_out.bias)
        if not self.deep_filter:
            self.switch_off_deep_filter()

    def switch_off_deep_filter(self) -> None:
        """Gains only: the deep-filter head is zeroed and frozen (its graph stays, adding nothing),
        so what trains is exactly what a gains-only export runs. Call again after loading weights."""
        self.deep_filter = False
        with torch.no_grad():
            self.df_head.weight.zero_()
            self.df_head.bias.zero_()
        self.df_head.weight.requires_grad_(False)
        self.df_head.bias.requires_grad_(False)

    @property
    def input_channels(self) -> int:
        return self._floor_offset + (self.bands + self.df_bins if self.noise_floor else 0) + (PITCH_LAGS if self.pitch else 0)

    @property
    def _floor_offset(self) -> int:
        """Where the noise-floor inputs start (bands, then low bins); the harmonicity inputs come after them."""
        return self.bands + 2 * self.df_bins + self.logmag_bins

    @property
    def bin_freq_inputs(self) -> int:
        return 4 if self.noise_floor else 3

    # -------------------------------------------------------------------------------- features
    def _logmag(self, mag, mean_mag):
        """Per-bin log magnitude against its 1 s running mean, /40 dB like the band features."""
        n = self.logmag_bins
        return (20.0 * torch.log10(mag[..., :n] + 1e-5) - 20.0 * torch.log10(mean_mag[..., :n] + 1e-5)) / 40.0

    def _floor_power(self, re, im):
        """(..., F) spectrum -> (..., bands + df_bins): the band powers, then the low bins' powers."""
        power = re * re + im * im
        return torch.cat([power @ self.erb_avg, power[..., : self.df_bins]], -1)

    @staticmethod
    def _floor_feature(smooth, floor_db):
        """Each band's and low bin's smoothed level above its noise floor (>= 0), /40 dB like the other features."""
        return (10.0 * torch.log10(smooth + 1e-10) - floor_db) / 40.0

    def _pitch_contrib(self, re, im):
        """(..., F) frames -> (..., 2 * PITCH_SEG) windowed low-band samples at 12 kHz, to overlap-add."""
        return re[..., : self.df_bins] @ self.pitch_re + im[..., : self.df_bins] @ self.pitch_im

    def _pitch_sequence(self, re, im):
        """(B, T, F) -> (B, T, PITCH_LAGS) harmonicity inputs, as the step computes them frame by frame."""
        contrib = self._pitch_contrib(re, im)
        done = contrib[..., :PITCH_SEG] + F.pad(contrib[..., PITCH_SEG:], (0, 0, 1, 0))[:, :-1]
        b, t = done.shape[:2]
        signal = F.pad(done.reshape(b, t * PITCH_SEG), (PITCH_HIST, 0))
        windows = signal.unfold(-1, PITCH_HIST + PITCH_SEG, PITCH_SEG)  # (B, T, PITCH_HIST + PITCH_SEG)
        return pitch_correlation(windows.reshape(b * t, -1)).reshape(b, t, PITCH_LAGS)

    def _band_db(self, re, im):
        power = re * re + im * im
        return 10.0 * torch.log10(power @ self.erb_avg + 1e-10)

    def features_sequence(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """(B, T, F) real/imag spectra -> (B, C_in, T) normalised features (causal, as streamed)."""
        band_db = self._band_db(re, im)
        mag = torch.sqrt(re[..., : self.df_bins] ** 2 + im[..., : self.df_bins] ** 2)
        b = re.shape[0]
        mean = causal_ema(band_db, self.erb_init.expand(b, -1), NORM_ALPHA)
        mean_mag = causal_ema(mag, self.unit_init.expand(b, -1), NORM_ALPHA)
        unit = torch.sqrt(mean_mag)
        erb_feat = (band_db - mean) / 40.0
        parts = [erb_feat, re[..., : self.df_bins] / unit, im[..., : self.df_bins] / unit]
        if self.logmag_bins:
            parts.append(self._logmag(mag, mean_mag))
        if self.noise_floor:
            smooth = causal_ema(self._floor_power(re, im), self.floor_smooth_init.expand(b, -1), FLOOR_SMOOTH)
            floor = running_floor(10.0 * torch.log10(smooth + 1e-10), self.floor_init.expand(b, -1))
            parts.append(self._floor_feature(smooth, floor))
        if self.pitch:
            parts.append(self._pitch_sequence(re, im))
        return torch.cat(parts, -1).transpose(1, 2)

    # --------------------------------------------------------------------------------- network
    def hidden_sequence(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) features -> (B, channels, T): what the heads read."""
        look = self.lookahead
        # with lookahead L the trunk also runs on L frames before the first, whose inputs are zero
        # but for the lookahead tap: as the streaming step does before its first L outputs
        h = self.inp(F.pad(feat, (look, look)) if look else feat)
        for conv, act, d in zip(self.convs, self.acts, self.dilations):
            h = h + act(conv(F.pad(h, ((self.kernel - 1) * d, 0))))
        if self.gru_units:
            h = h + self.gru_proj(self.gru(h.transpose(1, 2))[0].transpose(1, 2))
        return h[..., look:]

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, channels, T) -> band gains (B, T, bands) and deep-filter coefficients (B, T, df_bins * order * 2)."""
        return torch.sigmoid(self.gain_head(h)).transpose(1, 2), self.df_head(h).transpose(1, 2)

    def trunk_sequence(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.hidden_sequence(feat))

    def per_bin_gains(self, h: torch.Tensor, feat: torch.Tensor, band_logits: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, channels, T) trunk output and (B, C_in, T) features of the same frames -> gains (B, T, F)
        for every bin: the band gains expanded, with the lowest ``bin_gains`` bins' logits moved by
        the bin head (sigmoid(band logit + bin logit): in [0, 1], the band gain where the head is 0).
        Without a bin head, exactly the band gains expanded (each bin lies in one band).
        ``band_logits``: the gain head's output (B, T, bands) when the caller has it already.
        ``context``: with ``bin_context``, the low bins' log magnitudes of the frames before
        ``feat``'s first (B, bin_gains, bin_context - 1), as the streaming step carries them;
        None: zeros (the features' running means, as before the first frame)."""
        if band_logits is None:
            band_logits = self.gain_head(h).transpose(1, 2)
        logits = band_logits @ self.erb_expand
        if self.bin_gains:
            n = self.bin_gains
            z = self.bin_head(torch.cat([h, feat], 1)).transpose(1, 2)
            low = logits[..., :n] + z
            if self.bin_conv:  # (B, T, n) -> (B * T, 3, n) along frequency and back
                off = self.bands + 2 * self.df_bins
                logmag = feat[:, off : off + n].transpose(1, 2)
                chans = [logmag, low, logits[..., :n]]
                if self.noise_floor:  # the low bins' levels above their floors: the last df_bins features
                    off = self._floor_offset + self.bands
                    chans.append(feat[:, off : off + n].transpose(1, 2))
                x = torch.stack(chans, -2)
                low = low + self.bin_freq(x.reshape(-1, len(chans), n)).reshape(low.shape)
            if self.bin_context:
                low = low + self.context_logits(h, self.context_window(feat, context), low)
            logits = torch.cat([low, logits[..., n:]], -1)
        return torch.sigmoid(logits)

    def context_window(self, feat: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C_in, T) features -> (B, bin_gains, bin_context - 1 + T): the low bins' log
        magnitudes after ``context`` (the frames before; None: zeros)."""
        n, off = self.bin_gains, self.bands + 2 * self.df_bins
        logmag = feat[:, off : off + n]
        if context is None:
            return F.pad(logmag, (self.bin_context - 1, 0))
        return torch.cat([context, logmag], -1)

    def context_logits(self, h: torch.Tensor, window: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """The context head's logits (B, T, bin_gains) from the trunk (B, channels, T), the log
        magnitude window (``context_window``) and the low bins' logits so far (B, T, bin_gains),
        read clipped to +-LOGIT_CLIP."""
        now = torch.cat([low.clamp(-LOGIT_CLIP, LOGIT_CLIP).transpose(1, 2), h], 1)
        z = torch.relu(self.ctx_time(window) + self.ctx_now(now))
        return self.ctx_out(torch.relu(self.ctx_mid(z))).transpose(1, 2)

    def apply(self, re, im, gains, coefs, hist_re, hist_im):
        """Enhanced spectrum of one frame or a sequence.

        ``gains``: per-bin gains (..., F); ``re, im``: (..., F) current frames; ``hist_re/hist_im``: (..., order, df_bins) with the
        current frame's low bins at index 0 and older frames after it.
        """
        out_re, out_im = gains * re, gains * im
        c = coefs.reshape(*coefs.shape[:-1], self.df_order, 2, self.df_bins)
        c_re, c_im = c[..., 0, :], c[..., 1, :]
        df_re = (c_re * hist_re - c_im * hist_im).sum(-2)
        df_im = (c_re * hist_im + c_im * hist_re).sum(-2)
        low = self.df_bins
        out_re = torch.cat([out_re[..., :low] + df_re, out_re[..., low:]], -1)
        out_im = torch.cat([out_im[..., :low] + df_im, out_im[..., low:]], -1)
        return out_re, out_im

    def forward_sequence(self, re: torch.Tensor, im: torch.Tensor, with_bins: bool = False):
        """(B, T, F) noisy spectrum -> enhanced (re, im) and the band gains; ``with_bins`` adds the
        per-bin gains (B, T, F) applied (the band gains expanded, unless ``bin_gains``)."""
        with torch.no_grad():
            feat = self.features_sequence(re, im)
        h = self.hidden_sequence(feat)
        band_logits = self.gain_head(h).transpose(1, 2)
        gains = torch.sigmoid(band_logits)
        applied = self.per_bin_gains(h, feat, band_logits)
        if self.deep_filter:
            coefs = self.df_head(h).transpose(1, 2)
            low_re, low_im = re[..., : self.df_bins], im[..., : self.df_bins]
            hist_re = torch.stack([F.pad(low_re, (0, 0, k, 0))[:, : re.shape[1]] for k in range(self.df_order)], -2)
            hist_im = torch.stack([F.pad(low_im, (0, 0, k, 0))[:, : re.shape[1]] for k in range(self.df_order)], -2)
            out_re, out_im = self.apply(re, im, applied, coefs, hist_re, hist_im)
        else:
            # gains only: the frozen zero filter adds nothing, so its head (channels x df_bins x
            # order x 2 MACs a frame, about 7 % of the GRU net's) and its arithmetic are left out,
            # as in the gains-only export
            out_re, out_im = applied * re, applied * im
        if with_bins:
            return out_re, out_im, gains, applied
        return out_re, out_im, gains

    # ------------------------------------------------------------------------------- streaming
    def state_specs(self) -> list[dict]:
        specs = [
            {"input": "erb_mean_in", "output": "erb_mean_out", "shape": [1, self.bands], "init": ERB_INIT_DB},
            {"input": "unit_in", "output": "unit_out", "shape": [1, self.df_bins], "init": UNIT_INIT},
            {"input": "df_hist_in", "output": "df_hist_out", "shape": [1, 2, self.df_order - 1, self.df_bins], "init": 0.0},
        ]
        for i, d in enumerate(self.dilations):
            specs.append({"input": f"conv{i}_in", "output": f"conv{i}_out", "shape": [1, self.channels, (self.kernel - 1) * d], "init": 0.0})
        if self.lookahead:  # the frames waiting for their lookahead: features and spectra
            c_in = self.input_channels
            specs.append({"input": "look_feat_in", "output": "look_feat_out", "shape": [1, c_in, self.lookahead], "init": 0.0})
            specs.append({"input": "look_spec_in", "output": "look_spec_out", "shape": [1, 2, self.lookahead, N_BINS], "init": 0.0})
        if self.noise_floor:  # the smoothed powers and their floors (dB), bands then low bins
            n = self.bands + self.df_bins
            specs.append({"input": "floor_smooth_in", "output": "floor_smooth_out", "shape": [1, n], "init": FLOOR_SMOOTH_INIT})
            specs.append({"input": "floor_db_in", "output": "floor_db_out", "shape": [1, n], "init": FLOOR_INIT_DB})
        if self.gru_units:  # the recurrent layer's hidden state (layers, batch, units)
            specs.append({"input": "gru_in", "output": "gru_out", "shape": [1, 1, self.gru_units], "init": 0.0})
        if self.pitch:  # the 12 kHz low-band signal: the half frame still to overlap-add, and the completed past
            specs.append({"input": "pitch_ola_in", "output": "pitch_ola_out", "shape": [1, PITCH_SEG], "init": 0.0})
            specs.append({"input": "pitch_hist_in", "output": "pitch_hist_out", "shape": [1, PITCH_HIST], "init": 0.0})
        if self.bin_context:  # the low bins' log magnitudes of the last bin_context - 1 frames
            specs.append({"input": "bin_ctx_in", "output": "bin_ctx_out", "shape": [1, self.bin_gains, self.bin_context - 1], "init": 0.0})
        return specs


class FullBandStep(nn.Module):
    """One frame: ``x`` [1, 2, F] (real, imag) plus states -> enhanced [1, 2, F] plus states.
    With lookahead L the output is frame t - L (the engine aligns it: manifest ``lookahead_frames``)."""

    def __init__(self, net: FullBandNet):
        super().__init__()
        self.net = net

    def forward(self, x, erb_mean, unit, df_hist, *rest):
        n = self.net
        k = len(n.dilations)
        conv_states = rest[:k]
        look_states = rest[k : k + (2 if n.lookahead else 0)]
        k += len(look_states)
        floor_in = rest[k : k + (2 if n.noise_floor else 0)]
        k += len(floor_in)
        gru_in = rest[k] if n.gru_units else None
        k += 1 if n.gru_units else 0
        pitch_in = rest[k : k + (2 if n.pitch else 0)]
        k += len(pitch_in)
        ctx_in = rest[k] if n.bin_context else None
        re, im = x[:, 0], x[:, 1]  # (1, F)
        band_db = n._band_db(re, im)
        erb_mean = band_db * (1 - NORM_ALPHA) + erb_mean * NORM_ALPHA
        low_re, low_im = re[:, : n.df_bins], im[:, : n.df_bins]
        mag = torch.sqrt(low_re**2 + low_im**2)
        unit = mag * (1 - NORM_ALPHA) + unit * NORM_ALPHA
        s = torch.sqrt(unit)
        parts = [(band_db - erb_mean) / 40.0, low_re / s, low_im / s]
        if n.logmag_bins:
            parts.append(n._logmag(mag, unit))
        floor_state = []
        if n.noise_floor:
            smooth, floor_db = floor_in
            smooth = n._floor_power(re, im) * (1 - FLOOR_SMOOTH) + smooth * FLOOR_SMOOTH
            floor_db = torch.minimum(10.0 * torch.log10(smooth + 1e-10), floor_db + FLOOR_RISE_DB)
            parts.append(n._floor_feature(smooth, floor_db))
            floor_state = [smooth, floor_db]
        pitch_state = []
        if n.pitch:
            ola, hist = pitch_in
            contrib = n._pitch_contrib(re, im)
            window = torch.cat([hist, contrib[:, :PITCH_SEG] + ola], -1)
            parts.append(pitch_correlation(window))
            pitch_state = [contrib[:, PITCH_SEG:], window[:, PITCH_SEG:]]
        feat = torch.cat(parts, -1).unsqueeze(-1)  # (1, C_in, 1)
        look = []
        feat_now = feat  # the output frame's own features (for the bin head)
        if n.lookahead:  # gains for the oldest waiting frame, from its features and the newer ones
            look_feat, look_spec = look_states
            window = torch.cat([look_feat, feat], -1)  # (1, C_in, 1 + L)
            spec_window = torch.cat([look_spec, x.unsqueeze(2)], 2)  # (1, 2, 1 + L, F)
            look = [window[..., 1:], spec_window[:, :, 1:]]
            feat, feat_now = window, window[..., :1]
            re, im = spec_window[:, 0, 0], spec_window[:, 1, 0]
            low_re, low_im = re[:, : n.df_bins], im[:, : n.df_bins]
        h = n.inp(feat)
        new_states = []
        for conv, act, buf in zip(n.convs, n.acts, conv_states):
            window = torch.cat([buf, h], -1)
            h = h + act(conv(window))
            new_states.append(window[..., 1:])
        gru_state = []
        if n.gru_units:
            out, hidden = n.gru(h.transpose(1, 2), gru_in)
            h = h + n.gru_proj(out.transpose(1, 2))
            gru_state = [hidden]
        ctx_state = []
        if n.bin_context:
            ctx_state = [n.context_window(feat_now, ctx_in)[..., 1:]]
        if n.bin_gains:
            g = n.per_bin_gains(h, feat_now, context=ctx_in)[:, 0]  # (1, F)
        else:
            g = torch.sigmoid(n.gain_head(h))[..., 0] @ n.erb_expand  # (1, bands) -> (1, F)
        if not n.deep_filter:
            # gains only: the zeroed head and the filter's arithmetic are left out of the graph (a
            # zero filter adds nothing); the history state passes through unchanged
            return (torch.stack([g * re, g * im], 1), erb_mean, unit, df_hist + 0.0, *new_states, *look, *floor_state, *gru_state, *pitch_state, *ctx_state)
        coefs = n.df_head(h)[..., 0]
        hist_re = torch.cat([low_re.unsqueeze(1), df_hist[:, 0]], 1)  # (1, order, df_bins)
        hist_im = torch.cat([low_im.unsqueeze(1), df_hist[:, 1]], 1)
        out_re, out_im = n.apply(re, im, g, coefs, hist_re, hist_im)
        new_hist = torch.stack([hist_re[:, :-1], hist_im[:, :-1]], 1)
        return (torch.stack([out_re, out_im], 1), erb_mean, unit, new_hist, *new_states, *look, *floor_state, *gru_state, *pitch_state, *ctx_state)

    def initial_states(self) -> list[torch.Tensor]:
        return [torch.full(spec["shape"], float(spec["init"])) for spec in self.net.state_specs()]


# ------------------------------------------------------------------------------ STFT and losses
def stft(x: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """As the engine's StreamingSTFT: frame t ends at sample (t + 1) * hop (left zero padding),
    periodic sqrt-Hann window, no scaling. (B, N) -> complex (B, T, F), T = N // hop."""
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device).sqrt()
    padded = F.pad(x, (n_fft - hop, 0))
    frames = padded.unfold(-1, n_fft, hop)[:, : x.shape[-1] // hop]
    return torch.fft.rfft(frames * window, dim=-1)


def istft(spec: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """Weighted overlap-add of sqrt-Hann frames (50 % overlap: the synthesis window equals the
    analysis window); output delayed by n_fft - hop samples, as the engine's."""
    window = torch.hann_window(n_fft, periodic=True, dtype=spec.real.dtype, device=spec.device).sqrt()
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1) * window  # (B, T, n_fft)
    b, t, _ = frames.shape
    out = F.fold(frames.transpose(1, 2), output_size=(1, (t - 1) * hop + n_fft), kernel_size=(1, n_fft), stride=(1, hop))
    return out.reshape(b, -1)


def compressed_loss(est_re, est_im, ref_re, ref_im, c: float = 0.3, eps: float = 1e-8):
    """DeepFilterNet's spectral loss: compressed magnitudes and compressed complex spectra."""
    est_mag = (est_re**2 + est_im**2 + eps).sqrt()
    ref_mag = (ref_re**2 + ref_im**2 + eps).sqrt()
    est_c, ref_c = est_mag**c, ref_mag**c
    mag = F.mse_loss(est_c, ref_c)
    cplx = F.mse_loss(est_re * est_c / est_mag, ref_re * ref_c / ref_mag) + F.mse_loss(est_im * est_c / est_mag, ref_im * ref_c / ref_mag)
    return mag, cplx


def multires_loss(est: torch.Tensor, ref: torch.Tensor, sizes=(480, 1920), c: float = 0.3) -> torch.Tensor:
    total = est.new_zeros(())
    for n in sizes:
        e, r = stft(est, n, n // 4), stft(ref, n, n // 4)
        total = total + F.mse_loss((e.abs() + 1e-8) ** c, (r.abs() + 1e-8) ** c)
    return total / len(sizes)


def post_filter(gains: torch.Tensor, beta: float = 0.02) -> torch.Tensor:
    """PercepNet's post-filter as DeepFilterNet applies it to its ERB gains: gains near 1 stay,
    low gains are pushed further down, (1 + beta) g / (1 + beta / sin(pi g / 2)^2)."""
    s = torch.sin(torch.pi * gains / 2).clamp(min=1e-6)
    return (1 + beta) * gains / (1 + beta / s**2)


def release_limit(gains: torch.Tensor, alpha: float) -> torch.Tensor:
    """RNNoise's limit on how fast a gain may fall: g_t = max(g_t, alpha * g_{t-1}) along frames
    (dim 1 of (B, T, ...)); rising gains pass unchanged, a fall from 1 to 0 takes alpha^k over k
    frames (0: no limit)."""
    if not alpha:
        return gains
    out = [gains[:, 0]]
    for t in range(1, gains.shape[1]):
        out.append(torch.maximum(gains[:, t], alpha * out[-1]))
    return torch.stack(out, 1)


def band_gain_target(noisy_re, noisy_im, clean_re, clean_im, net: FullBandNet) -> torch.Tensor:
    """Ideal ERB gains sqrt(E_clean / E_noisy), clipped to [0, 1] (RNNoise's target)."""
    e_noisy = (noisy_re**2 + noisy_im**2) @ net.erb_avg
    e_clean = (clean_re**2 + clean_im**2) @ net.erb_avg
    return torch.sqrt(e_clean / (e_noisy + 1e-10)).clamp(0.0, 1.0)


def count_macs_per_frame(net: FullBandNet) -> int:
    c_in = net.input_channels
    macs = c_in * net.channels * (1 + net.lookahead)  # input layer
    macs += len(net.dilations) * net.channels * net.channels * net.kernel
    macs += net.channels * (net.bands + net.df_bins * net.df_order * 2)
    macs += N_BINS * net.bands + N_BINS  # ERB pooling and gain expansion (approximately)
    macs += net.df_bins * net.df_order * 4
    if net.bin_gains:  # bin head (with its hidden layer), logits expanded
        macs += (net.channels + c_in) * (net.bin_hidden or net.bin_gains) + net.bin_hidden * net.bin_gains + N_BINS * net.bands
    if net.bin_conv:  # the convolution along frequency, at each of the low bins
        c = net.bin_conv
        macs += net.bin_gains * (net.bin_freq_inputs * c * 7 + c * c * 5 + c)
    if net.gru_units:  # three gates on the input and on the hidden state, then the projection back
        u = net.gru_units
        macs += 3 * (net.channels * u + u * u) + u * net.channels
    if net.pitch:  # the low bins to 12 kHz samples, then the correlation and the two energies' sums
        macs += 2 * net.df_bins * 2 * PITCH_SEG + (PITCH_MAX_LAG + 1) * PITCH_WIN + PITCH_WIN + PITCH_MAX_LAG
    if net.bin_context:  # the context head: the time convolution, the frame's logits and trunk, the hidden and output layers
        n, c = net.bin_gains, net.bin_context_hidden
        macs += n * net.bin_context * c + (n + net.channels) * c + c * c + c * n
    return int(macs)


def as_numpy_states(step: FullBandStep) -> list[np.ndarray]:
    return [s.numpy() for s in step.initial_states()]
