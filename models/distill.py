"""DeepFilterNet3 as a teacher for the full-band model, and a cached set of teacher-labelled mixtures.

DeepFilterNet3 (Schröter et al. 2023, MIT OR Apache-2.0, ``../shared/models-thirdparty``) works on
the same 48 kHz 960/480 STFT and the same 32 ERB bands as ``noisenil_fb``. Its own ERB gains are no
use alone (its deep filter replaces the lowest 96 bins, so the low-band gains were never trained to
stand on their own: applied alone they score below the noisy input). What the teacher gives is its
*output*, projected onto the ERB bands: ``sqrt(E_out / E_noisy)`` per band and frame, in [0, 1].
Applied as band gains, that projection scores PESQ-WB 2.08 / SI-SDR 12.9 dB on the dev pairs
(DeepFilterNet3 itself, in the engine: 2.22 / 13.65; the ideal gains from the clean speech:
2.96 / 16.1; ``python -m models.distill bounds``; with ``--dnsmos``, OVRL 2.96 and 3.11 against
RNNoise's 2.88). It is a target a gains-only model can reach, and a function
of the input (plus DeepFilterNet3's 20 ms look-ahead), not of the unseen clean speech.

The teacher runs the three published graphs on a whole clip at once (batch, not streaming: the
GRUs start from zero at the clip's start, as in the reference's offline use), with libDF's
features and post-processing (Vorbis window, exponential normalisation, the 5-tap deep filter,
the local-SNR gates). ``tests/models/test_distill.py`` checks it against the engine's frame-by-
frame ``DeepFilterNetProcessor``.

``python -m models.distill build OUT --examples N --seed S`` writes ``OUT/noisy.npy``,
``OUT/clean.npy`` (float16, N x samples) and ``OUT/teacher.npy`` (float16, N x frames x 32) from
``models.mixing.Mixer`` (train split, shippable rows only). The recipe key ``cache`` points
training at such a folder, and the loss weight ``teacher`` adds the distillation term
(``teacher_energy_exponent`` weights it by the noisy band power, ``models.train.losses``).
``python -m models.distill gap CHECKPOINT --bands 0-12 13-24 25-31`` scores a checkpoint with the
teacher's gains put into each band range in turn: which bands the student loses in;
``--output-bins 0-95`` adds rows with the teacher's output (its deep filter's work too) in those bins,
``--gain-bins 0-95`` rows with its real per-bin gains there (``|output| / |input|``, the noisy phase).
``python -m models.distill bins CACHE`` adds those per-bin gains to a built cache
(``OUT/teacher_bins.npy``), the target of the loss weight ``teacher_bins`` for a net with ``bin_gains``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE, N_FFT, HOP, BANDS, NB_DF, DF_ORDER, LOOKAHEAD = 48000, 960, 480, 32, 96, 5, 2
LSNR_MIN_DB, LSNR_MAX_DB = -15.0, 35.0
ARCHIVE = Path(__file__).resolve().parent.parent.parent / "shared" / "models-thirdparty" / "deepfilternet3" / "DeepFilterNet3_onnx.tar.gz"


def read_graphs(archive: Path = ARCHIVE) -> dict[str, bytes]:
    """The three published graphs from DeepFilterNet3_onnx.tar.gz, in memory."""
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if name in ("enc.onnx", "erb_dec.onnx", "df_dec.onnx"):
                out[name[:-5]] = tar.extractfile(member).read()
    if len(out) != 3:
        raise ValueError(f"{archive}: expected enc.onnx, erb_dec.onnx and df_dec.onnx, found {sorted(out)}")
    return out


class Teacher:
    """DeepFilterNet3 on a whole clip: ``band_gains(x)`` and ``enhance(x)``."""

    def __init__(self, archive: Path = ARCHIVE, threads: int = 1):
        import onnxruntime as ort

        from plugin_host.deepfilternet import erb_widths, norm_alpha
        from plugin_host.stft import make_window

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        graphs = read_graphs(archive)
        self.sessions = {k: ort.InferenceSession(v, so, providers=["CPUExecutionProvider"]) for k, v in graphs.items()}
        self.widths = erb_widths(SAMPLE_RATE, N_FFT, BANDS, 2)
        self.band_of_bin = np.repeat(np.arange(BANDS), self.widths)
        self.avg = np.zeros((N_FFT // 2 + 1, BANDS))
        self.avg[np.arange(N_FFT // 2 + 1), self.band_of_bin] = 1.0 / self.widths[self.band_of_bin]
        self.alpha = norm_alpha(SAMPLE_RATE, HOP, 1.0)
        self.window = make_window("vorbis", N_FFT)
        self.wnorm = 1.0 / np.sum(self.window**2) * HOP / N_FFT

    def _spectra(self, x: np.ndarray) -> np.ndarray:
        """Frames ending at samples (t + 1) * HOP, t = 0 .. n + LOOKAHEAD - 1 (zeros past the end)."""
        n = len(x) // HOP
        padded = np.concatenate([np.zeros(N_FFT - HOP), x.astype(np.float64), np.zeros(LOOKAHEAD * HOP + HOP)])
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][: n + LOOKAHEAD]
        return np.fft.rfft(frames * self.window, axis=-1) * self.wnorm

    def _network(self, s: np.ndarray):
        erb = 10.0 * np.log10((s.real**2 + s.imag**2) @ self.avg + 1e-10)
        from plugin_host.deepfilternet import initial_norms, normalise

        low = s[:, :NB_DF]
        mean, unit = initial_norms(BANDS, NB_DF)
        t_all = len(s)
        feat_erb = np.empty((t_all, BANDS), np.float32)
        feat_spec = np.empty((t_all, NB_DF), np.complex64)
        for t in range(t_all):  # the same per-frame normalisation as the engine's streaming DeepFilterNet3
            feat_erb[t], feat_spec[t], mean, unit = normalise(erb[t], low[t], mean, unit, self.alpha)
        spec = np.stack([feat_spec.real, feat_spec.imag])[None].astype(np.float32)
        e = dict(zip(("e0", "e1", "e2", "e3", "emb", "c0", "lsnr"), self.sessions["enc"].run(None, {"feat_erb": feat_erb[None, None], "feat_spec": spec})))
        gains = self.sessions["erb_dec"].run(None, {k: e[k] for k in ("emb", "e3", "e2", "e1", "e0")})[0].reshape(t_all, BANDS)
        coefs = self.sessions["df_dec"].run(None, {"emb": e["emb"], "c0": e["c0"]})[0].reshape(t_all, NB_DF, DF_ORDER, 2)
        return gains, coefs, e["lsnr"].reshape(t_all)

    def enhanced_spectrum(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, enhanced) spectra, (n, 481) each, n = len(x) // HOP, frame t ending at (t + 1) * HOP."""
        n = len(x) // HOP
        s = self._spectra(x)
        gains, coefs, lsnr = self._network(s)
        # the network's output at index i belongs to frame i - LOOKAHEAD
        g, c, snr = gains[LOOKAHEAD:], coefs[LOOKAHEAD:], lsnr[LOOKAHEAD:]
        noisy = s[:n]
        out = noisy * g[:, self.band_of_bin]
        past = np.concatenate([np.zeros((2, s.shape[1]), s.dtype), s])  # past[t + j] is frame t - 2 + j
        window = np.stack([past[j : j + n, :NB_DF] for j in range(DF_ORDER)], -1)
        deep = np.sum(window * (c[..., 0] + 1j * c[..., 1]), -1)
        out[:, :NB_DF] = np.where((snr <= LSNR_MAX_DB)[:, None], deep, out[:, :NB_DF])
        out = np.where((snr < LSNR_MIN_DB)[:, None], 0.0, out)
        out = np.where((snr > LSNR_MAX_DB)[:, None], noisy, out)
        return noisy, out

    def synthesise(self, spec: np.ndarray, length: int) -> np.ndarray:
        """The waveform of spectra framed as ``_spectra`` frames them (the engine's Vorbis overlap-add,
        libDF's scaling undone): ``synthesise(_spectra(x)[: len(x) // HOP], len(x))`` gives ``x`` back."""
        from plugin_host.stft import StreamingSTFT

        ola = StreamingSTFT(N_FFT, HOP, "vorbis")
        # frame t's first hop comes out one hop late; a silent frame after the last flushes the tail
        hops = [ola.synthesize(frame / self.wnorm) for frame in spec] + [ola.synthesize(np.zeros(N_FFT // 2 + 1))]
        return np.concatenate(hops)[HOP : HOP + length]

    def enhanced(self, x: np.ndarray) -> np.ndarray:
        """DeepFilterNet3's output waveform, aligned with ``x`` (its 20 ms look-ahead taken out)."""
        return self.synthesise(self.enhanced_spectrum(x)[1], len(x))

    def band_gains(self, x: np.ndarray) -> np.ndarray:
        """DeepFilterNet3's output projected onto the ERB bands: (n, 32) float32 in [0, 1]."""
        return self._band_gains(*self.enhanced_spectrum(x))

    def _band_gains(self, noisy: np.ndarray, out: np.ndarray) -> np.ndarray:
        e_in = (noisy.real**2 + noisy.imag**2) @ self.avg
        e_out = (out.real**2 + out.imag**2) @ self.avg
        return np.sqrt(e_out / (e_in + 1e-10)).clip(0.0, 1.0).astype(np.float32)

    def labels(self, x: np.ndarray, bins: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """One run of the teacher, both labels: ``band_gains(x)`` and, when ``bins``, the per-bin
        gains ``bin_gains(self, x, bins)`` (else None), equal to what each gives alone."""
        noisy, out = self.enhanced_spectrum(x)
        gains = self._band_gains(noisy, out)
        if not bins:
            return gains, None
        return gains, _real_bin_gains(x, self.synthesise(out, len(x)), bins)


# ----------------------------------------------------------------------------------------- cache
def _one_thread() -> None:
    """A labelling worker computes on one core: torch's OpenMP pool and the BLAS pools set to one
    thread. With their defaults (a thread per core) in every worker, 2 workers on 2 cores
    oversubscribed them and labelled 9.5 mixtures a second instead of 23. Without torch (a
    labeller of band gains only needs none) or threadpoolctl, what is there is pinned."""
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(1)


def _build_part(args):
    out, mix_dict, start, stop = args
    from .mixing import MixConfig, Mixer

    _one_thread()
    mixer, teacher = Mixer(MixConfig.from_dict(mix_dict)), Teacher()
    noisy = np.load(out / "noisy.npy", mmap_mode="r+")
    clean = np.load(out / "clean.npy", mmap_mode="r+")
    gains = np.load(out / "teacher.npy", mmap_mode="r+")
    for i in range(start, stop):
        ex = mixer.example(i)
        noisy[i], clean[i] = ex["noisy"], ex["clean"]
        gains[i] = teacher.band_gains(ex["noisy"])
    noisy.flush(), clean.flush(), gains.flush()
    return stop - start


def build(out: Path, mix: dict, examples: int, workers: int = 2, log=print) -> Path:
    """Mixtures ``0 .. examples - 1`` of ``mix`` (a recipe's ``mix`` with its ``seed``) with their teacher gains."""
    from concurrent.futures import ProcessPoolExecutor

    from .mixing import MixConfig

    cfg = MixConfig.from_dict(mix)
    n = round(cfg.seconds * SAMPLE_RATE)
    out.mkdir(parents=True, exist_ok=True)
    for name, shape in (("noisy", (examples, n)), ("clean", (examples, n)), ("teacher", (examples, n // HOP, BANDS))):
        np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=np.float16, shape=shape).flush()
    t0 = time.time()
    chunk = 250
    jobs = [(out, mix, a, min(a + chunk, examples)) for a in range(0, examples, chunk)]
    done = 0
    with ProcessPoolExecutor(workers) as pool:
        for k in pool.map(_build_part, jobs):
            done += k
            log(f"{done}/{examples} examples, {time.time() - t0:.0f} s")
    (out / "cache.json").write_text(json.dumps({"mix": mix, "examples": examples, "teacher": "deepfilternet3 output projected on 32 ERB bands", "archive": ARCHIVE.name}, indent=1))
    return out


def bin_gains(teacher: Teacher, x: np.ndarray, bins: int) -> np.ndarray:
    """DeepFilterNet3's output as real per-bin gains on our STFT's ``bins`` lowest bins:
    ``|teacher output| / |noisy|`` clipped to [0, 1], (len(x) // HOP, bins) float32. On the shipped
    gains these gains in bins 0-95 score almost what the teacher's complex output there scores (its
    phase adds little), so a bounded real head can aim at them."""
    x = np.asarray(x, np.float32)
    return _real_bin_gains(x, teacher.enhanced(x), bins)


def _real_bin_gains(x: np.ndarray, y: np.ndarray, bins: int) -> np.ndarray:
    """``|STFT(y)| / |STFT(x)|`` in our STFT's ``bins`` lowest bins, clipped to [0, 1]: (len(x) // HOP, bins)."""
    import torch

    from . import fullband

    n = len(x) // HOP
    spec = fullband.stft(torch.from_numpy(np.asarray(x, np.float32))[None])[0, :n, :bins]
    out = fullband.stft(torch.from_numpy(np.asarray(y, np.float32))[None])[0, :n, :bins]
    return real_gains_for(out, spec).numpy().astype(np.float32)


def _bins_part(args):
    folder, bins, start, stop = args
    _one_thread()
    teacher = Teacher()
    noisy = np.load(folder / "noisy.npy", mmap_mode="r")
    out = np.load(folder / BINS_FILE, mmap_mode="r+")
    for i in range(start, stop):
        out[i] = bin_gains(teacher, np.asarray(noisy[i], np.float32), bins)
    out.flush()
    return stop - start


BINS_FILE = "teacher_bins.npy"


def build_bins(folder: Path, bins: int = NB_DF, workers: int = 2, log=print) -> Path:
    """Add the teacher's per-bin gains (``bin_gains``, float16, N x frames x bins) to a built cache:
    the target of the loss weight ``teacher_bins`` for a net with ``bin_gains``."""
    from concurrent.futures import ProcessPoolExecutor

    folder = Path(folder)
    noisy = np.load(folder / "noisy.npy", mmap_mode="r")
    examples, frames = len(noisy), noisy.shape[1] // HOP
    np.lib.format.open_memmap(folder / BINS_FILE, mode="w+", dtype=np.float16, shape=(examples, frames, bins)).flush()
    t0, done, chunk = time.time(), 0, 100
    jobs = [(folder, bins, a, min(a + chunk, examples)) for a in range(0, examples, chunk)]
    with ProcessPoolExecutor(workers) as pool:
        for k in pool.map(_bins_part, jobs):
            done += k
            if done % 1000 < chunk or done == examples:
                log(f"{done}/{examples} examples, {time.time() - t0:.0f} s")
    info = json.loads((folder / "cache.json").read_text())
    tmp = folder / "cache.json.tmp"  # the cache's description is rewritten whole or not at all
    tmp.write_text(json.dumps({**info, "teacher_bins": bins}, indent=1))
    tmp.replace(folder / "cache.json")
    return folder


class CachedSet:
    """A built cache as training examples: global index i -> (noisy, clean, teacher gains[, the
    teacher's per-bin gains when ``bins``]) of a seeded per-epoch permutation, so a resumed run
    sees the same sequence."""

    def __init__(self, folder: Path, seed: int = 0, bins: bool = False):
        self.folder = Path(folder)
        self.noisy = np.load(self.folder / "noisy.npy", mmap_mode="r")
        self.clean = np.load(self.folder / "clean.npy", mmap_mode="r")
        self.teacher = np.load(self.folder / "teacher.npy", mmap_mode="r")
        self.bins = np.load(self.folder / BINS_FILE, mmap_mode="r") if bins else None
        self.size, self.seed, self._perm = len(self.noisy), seed, {}

    def index(self, i: int) -> int:
        epoch, k = divmod(i, self.size)
        if epoch not in self._perm:
            self._perm = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.size)}
        return int(self._perm[epoch][k])

    def __getitem__(self, i: int):
        j = self.index(i)
        arrays = (self.noisy, self.clean, self.teacher) + ((self.bins,) if self.bins is not None else ())
        return tuple(np.asarray(a[j], np.float32) for a in arrays)


# ------------------------------------------------------------------------------------ live cache
# On a lent GPU machine a built cache cannot travel (5.8 GB per 10k examples) and building one first
# would spend the sitting. ``python -m models.distill live DIR`` instead labels mixtures
# 0, 1, 2, ... of a seed in worker processes for as long as it runs (about 11 a second per core),
# writing them into a fixed ring of ``capacity`` slots; a recipe with a ``live`` key trains on
# whatever is ready, each batch drawn uniformly from the ready slots. Mixture i is deterministic;
# which ones a step draws depends on how far the labelling has got, so such a sitting is not
# bit-reproducible (its log records the steps and minutes it reached).


def live_create(folder: Path, mix: dict, capacity: int, workers: int, archive: Path = ARCHIVE, bins: int = 0, first: int = 0) -> dict:
    """Empty ring files and ``live.json`` for ``workers`` labellers; ``capacity`` is rounded down
    to a multiple of ``workers`` (worker w owns slots w, w + workers, ...). ``bins``: each slot
    also holds the teacher's per-bin gains on that many of the lowest bins (``bin_gains``; about
    58 kB more a slot for 96), the target of the loss ``teacher_bins``. ``first``: label mixtures
    first, first + 1, ... (a sitting resumed on a fresh machine, past what the last one drew)."""
    from .mixing import MixConfig

    if workers < 1 or capacity < 2 * workers:
        raise ValueError(f"capacity {capacity} and workers {workers}: need workers >= 1 and capacity >= 2 * workers")
    if not 0 <= bins <= NB_DF:
        raise ValueError(f"bins {bins!r} not in [0, {NB_DF}]")
    if first < 0:
        raise ValueError(f"first {first!r}: a mixture index, must be >= 0")
    capacity -= capacity % workers
    n = round(MixConfig.from_dict(mix).seconds * SAMPLE_RATE)
    folder.mkdir(parents=True, exist_ok=True)
    shapes = [("noisy", (capacity, n)), ("clean", (capacity, n)), ("teacher", (capacity, n // HOP, BANDS))]
    if bins:
        shapes.append(("teacher_bins", (capacity, n // HOP, bins)))
    for name, shape in shapes:
        np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float16, shape=shape).flush()
    np.lib.format.open_memmap(folder / "done.npy", mode="w+", dtype=np.int64, shape=(workers,)).flush()
    info = {"mix": mix, "capacity": capacity, "workers": workers, "teacher": "deepfilternet3 output projected on 32 ERB bands", "archive": Path(archive).name}
    if bins:
        info["teacher_bins"] = bins
    if first:
        info["first"] = first
    (folder / "live.json").write_text(json.dumps(info, indent=1))
    return info


def _live_worker(folder: Path, w: int, stop: int | None = None, archive: Path = ARCHIVE) -> None:
    """Label mixtures first + w, first + w + W, ... into slots w, w + W, ... (mod capacity);
    ``done[w]`` counts the finished ones and moves only after a slot is written."""
    from .mixing import MixConfig, Mixer

    _one_thread()
    info = json.loads((folder / "live.json").read_text())
    workers, capacity = info["workers"], info["capacity"]
    mixer, teacher = Mixer(MixConfig.from_dict(info["mix"])), Teacher(archive)
    bins, first = info.get("teacher_bins", 0), info.get("first", 0)
    arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r+") for k in ("noisy", "clean", "teacher", "done") + (("teacher_bins",) if bins else ())}
    j = 0
    while stop is None or j < stop:
        i = w + workers * j
        ex = mixer.example(first + i)
        slot = i % capacity
        arrays["noisy"][slot], arrays["clean"][slot] = ex["noisy"], ex["clean"]
        arrays["teacher"][slot], per_bin = teacher.labels(ex["noisy"], bins)
        if bins:
            arrays["teacher_bins"][slot] = per_bin
        j += 1
        arrays["done"][w] = j


def live(folder: Path, mix: dict, capacity: int, workers: int, stop: int | None = None, archive: Path = ARCHIVE, log=print, bins: int = 0, first: int = 0) -> None:
    """Create the ring and label into it with ``workers`` processes, until each has done ``stop``
    mixtures (None: until killed). The corpus is decoded once, before the workers fork. ``bins``:
    the per-bin gains too (``live_create``)."""
    import multiprocessing as mp

    from .mixing import MixConfig, warm

    info = live_create(folder, mix, capacity, workers, archive, bins, first)
    t0 = time.time()
    warm(MixConfig.from_dict(mix), threads=workers)
    log(f"{folder}: {info['capacity']} slots, {workers} labelling workers" + (f", per-bin gains on {bins} bins" if bins else "") + f", corpus decoded in {time.time() - t0:.0f} s")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_live_worker, args=(folder, w, stop, archive), daemon=True) for w in range(workers)]
    for p in procs:
        p.start()
    done = np.load(folder / "done.npy", mmap_mode="r")
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=30.0 / len(procs))
            log(f"{int(done.sum())} mixtures labelled, {time.time() - t0:.0f} s")
    finally:
        for p in procs:
            p.terminate()
    if any(p.exitcode not in (0, None) for p in procs if stop is not None):
        raise RuntimeError(f"{folder}: a labelling worker failed (exit codes {[p.exitcode for p in procs]})")


def live_bins(recipe: dict) -> int:
    """How many of the lowest bins a recipe's live ring labels with the teacher's per-bin gains: the
    net's ``bin_gains`` (else all the deep-filter bins) when the recipe's loss has ``teacher_bins``, else 0."""
    if not recipe.get("loss", {}).get("teacher_bins"):
        return 0
    return int(recipe.get("net", {}).get("bin_gains") or NB_DF)


class LiveSet:
    """The ready slots of a live ring as training examples: example k is drawn with the generator
    seeded by (seed, k) uniformly from the slots finished at that moment (a slot being rewritten
    is never drawn)."""

    def __init__(self, folder: Path, seed: int = 0, bins: bool = False):
        self.folder = Path(folder)
        info = json.loads((self.folder / "live.json").read_text())
        self.workers, self.capacity, self.mix = info["workers"], info["capacity"], info["mix"]
        self.per_worker = self.capacity // self.workers
        if bins and not info.get("teacher_bins"):
            raise ValueError(f"{self.folder}: the ring holds no per-bin teacher gains (labelled without them)")
        self.names = ("noisy", "clean", "teacher") + (("teacher_bins",) if bins else ())
        self.arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r") for k in (*self.names, "done")}
        self.seed = seed

    def _available(self, done: np.ndarray) -> np.ndarray:
        """Finished slots per worker: once a worker's part of the ring is full, its oldest slot
        may be mid-rewrite and is left out."""
        return np.minimum(done, self.per_worker - 1)

    def ready(self) -> int:
        return int(self._available(np.asarray(self.arrays["done"])).sum())

    def slot(self, k: int) -> int:
        done = np.asarray(self.arrays["done"]).copy()  # one consistent view
        avail = self._available(done)
        total = int(avail.sum())
        if total == 0:
            raise RuntimeError(f"{self.folder}: no labelled mixtures yet")
        r = int(np.random.default_rng([self.seed, k]).integers(total))
        w = int(np.searchsorted(np.cumsum(avail), r, side="right"))
        j = int(done[w] - avail[w] + r - (avail[:w].sum()))
        return (w + self.workers * j) % self.capacity

    def __getitem__(self, k: int):
        s = self.slot(k)
        return tuple(np.asarray(self.arrays[name][s], np.float32) for name in self.names)


# ---------------------------------------------------------------------------------------- bounds
TUNING_SEED = 7  # the train-split tuning set: same recipe as the dev pairs, other speakers and noises


def _score_gains(gain_fns: dict, log=print, split: str = "dev", dnsmos: bool = False) -> dict:
    """PESQ-WB / SI-SDR on the eval pairs of each ``name -> fn(pair, noisy_spec, clean_spec)``
    that gives per-bin gains (1, T, F), applied to the noisy spectrum as a gains-only model would.

    ``split="train"``: the same recipe built from the train split (``evaluation.build_dev_set``),
    for choosing settings after training without looking at the dev pairs. ``dnsmos`` adds
    DNSMOS SIG / BAK / OVRL and the noise cut in speech pauses (slower)."""
    import torch

    from plugin_host.evaluation import (
        build_dev_set,
        pause_reduction_db,
        pesq_wb,
        quality,
        si_sdr,
    )

    from . import fullband

    pairs = build_dev_set(split=split) if split == "dev" else build_dev_set(split=split, seed=TUNING_SEED)
    keys = ("pesq_wb", "si_sdr_db") + (("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "pause_db") if dnsmos else ())
    scores: dict[str, list] = {k: [] for k in gain_fns}
    for p in pairs:
        spec = fullband.stft(torch.from_numpy(p.noisy)[None])
        clean = fullband.stft(torch.from_numpy(p.clean)[None])
        for k, fn in gain_fns.items():
            with torch.no_grad():
                g = fn(p, spec, clean)
            y = fullband.istft(spec * g)[0].numpy()[HOP : HOP + len(p.noisy)]
            y = np.pad(y, (0, len(p.noisy) - len(y)))
            row = {"snr": p.snr_db, "si_sdr_db": si_sdr(p.clean, y)}
            if dnsmos:
                row.update(quality(p.clean, y), pause_db=pause_reduction_db(p, y))
            else:
                row["pesq_wb"] = pesq_wb(p.clean, y)
            scores[k].append(row)

    def mean(rows, keys=("pesq_wb", "si_sdr_db")):
        return {key: round(float(np.nanmean([r[key] for r in rows])), 2) for key in keys}

    result = {}
    for k, rows in scores.items():
        snrs = sorted({r["snr"] for r in rows})
        result[k] = {**mean(rows, keys), "per_snr_db": {snr: mean([r for r in rows if r["snr"] == snr]) for snr in snrs}}
        per_snr = " | ".join(f"{snr:g} dB: {v['pesq_wb']:.2f} / {v['si_sdr_db']:.2f}" for snr, v in result[k]["per_snr_db"].items())
        if dnsmos:  # the same rows' DNSMOS per input SNR: where a model costs SIG or leaves BAK
            result[k]["per_snr_dnsmos"] = {snr: mean([r for r in rows if r["snr"] == snr], ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")) for snr in snrs}
            per_snr += "; SIG / BAK / OVRL: " + " | ".join(
                f"{snr:g} dB: {v['dnsmos_sig']:.2f} / {v['dnsmos_bak']:.2f} / {v['dnsmos_ovrl']:.2f}" for snr, v in result[k]["per_snr_dnsmos"].items()
            )
        extra = (
            f"  SIG {result[k]['dnsmos_sig']:.2f}  BAK {result[k]['dnsmos_bak']:.2f}  OVRL {result[k]['dnsmos_ovrl']:.2f}  pauses -{result[k]['pause_db']:.1f} dB"
            if dnsmos
            else ""
        )
        log(f"{k:28s} PESQ-WB {result[k]['pesq_wb']:.2f}  SI-SDR {result[k]['si_sdr_db']:.2f} dB{extra}  (per input SNR, PESQ-WB / SI-SDR: {per_snr})")
    return result


INPUT_ROW = "the noisy input"
TEACHER_ROW = "deepfilternet3 projected on the bands"


def _student_gains(net, spec):
    """A gains-only net's per-bin gains (1, T, F) for a noisy spectrum (1, T, F): its band gains
    expanded, with its per-bin gains on the lowest bins for a net with ``bin_gains``."""
    return net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous(), with_bins=True)[3]


def _teacher_gains(teacher: Teacher, pair, spec):
    """DeepFilterNet3's projected band gains (1, T, bands) for an eval pair, cut to the spectrum's frames."""
    import torch

    return torch.from_numpy(teacher.band_gains(pair.noisy))[None, : spec.shape[1]]


def bounds(log=print, dnsmos: bool = False) -> dict:
    """PESQ-WB / SI-SDR on the eval dev pairs of: the ideal ERB gains (from the clean speech),
    and DeepFilterNet3's output projected onto ERB gains (the distillation target); ``dnsmos``
    adds DNSMOS SIG / BAK / OVRL, i.e. whether a gains-only model can reach a DNSMOS bar at all."""
    from . import fullband

    teacher = Teacher()
    net = fullband.FullBandNet()
    return _score_gains(
        {
            "ideal_erb_gains": lambda p, spec, clean: fullband.band_gain_target(spec.real, spec.imag, clean.real, clean.imag, net) @ net.erb_expand,
            "deepfilternet3_projected": lambda p, spec, clean: _teacher_gains(teacher, p, spec) @ net.erb_expand,
        },
        log,
        dnsmos=dnsmos,
    )


def _gains_only_net(path: Path):
    """A ``models.train`` checkpoint as the gains-only net it would export as, and the checkpoint."""
    import torch

    from . import fullband

    ck = torch.load(path, weights_only=False, map_location="cpu")
    net = fullband.FullBandNet(**{**ck["config"]["net"], "deep_filter": False})
    net.load_state_dict(ck["model"])
    net.switch_off_deep_filter()
    return net.eval(), ck


def _reshaped(gains, exponent: float, post_filter: float, release: float = 0.0):
    """Band gains raised to ``exponent``, then through the PercepNet / DeepFilterNet post-filter
    (``fullband.post_filter``, 0: none), then RNNoise's limit on how fast they fall
    (``fullband.release_limit``, 0: none)."""
    from . import fullband

    g = gains if exponent == 1.0 else gains.clamp(min=1e-6).pow(exponent)
    g = fullband.post_filter(g, post_filter) if post_filter else g
    return fullband.release_limit(g, release)


def score_checkpoints(
    paths: list[Path],
    log=print,
    gain_exponents: tuple[float, ...] = (1.0,),
    post_filters: tuple[float, ...] = (0.0,),
    releases: tuple[float, ...] = (0.0,),
    split: str = "dev",
    dnsmos: bool = False,
    without_bin_head: bool = False,
    without_pitch: bool = False,
    with_input: bool = False,
    with_teacher: bool = False,
) -> dict:
    """The same scores for gains-only checkpoints of ``models.train`` (to choose which to export).
    ``gain_exponents`` other than 1 also score each with its band gains raised to that power
    (below 1: gentler, above 1: harsher), a check of how the gains are calibrated; ``post_filters``
    other than 0 with the post-filter of that beta after it (it pushes low gains further down);
    ``releases`` other than 0 with RNNoise's limit on how fast gains fall (g_t >= alpha g_{t-1}).
    Tune such settings on ``split="train"``, not on the dev pairs that the figures come from.
    ``without_bin_head``: also each checkpoint with ``bin_gains`` scored with its bin head's output
    at zero (its band gains alone): what the per-bin head adds. ``without_pitch``: also each
    checkpoint with harmonicity inputs scored with those inputs at zero (the weights reading them
    zeroed): how much the trained net leans on them. ``with_input`` adds a row for the noisy input
    itself (unit gains) and ``with_teacher`` one for DeepFilterNet3's output projected on the ERB
    bands (the band teacher term's target), the two ends a checkpoint sits between."""
    import torch

    from . import fullband

    fns = {}
    if with_input:
        fns[INPUT_ROW] = lambda p, spec, clean: torch.ones(spec.shape, dtype=torch.float32)
    if with_teacher:
        teacher, expand = Teacher(), fullband.erb_matrices(fullband.erb_widths(bands=BANDS))[1]
        fns[TEACHER_ROW] = lambda p, spec, clean: _teacher_gains(teacher, p, spec) @ expand
    for path in paths:
        net, ck = _gains_only_net(path)
        if without_pitch and net.pitch:
            off = copy.deepcopy(net)
            with torch.no_grad():
                off.inp.weight[:, -fullband.PITCH_LAGS :] = 0.0
                if off.bin_gains:
                    off.bin_head[0].weight[:, -fullband.PITCH_LAGS :] = 0.0
            fns[f"{Path(path).name} (step {ck['step']}) without its harmonicity inputs"] = lambda p, spec, clean, off=off: _student_gains(off, spec)
        if without_bin_head and net.bin_gains:
            off = copy.deepcopy(net)
            with torch.no_grad():
                off.bin_head[-1].weight.zero_()
                off.bin_head[-1].bias.zero_()
            fns[f"{Path(path).name} (step {ck['step']}) without its bin head"] = lambda p, spec, clean, off=off: _student_gains(off, spec)
        for a in gain_exponents:
            for beta in post_filters:
                for r in releases:
                    label = f"{Path(path).name} (step {ck['step']})" + (f" ^{a:g}" if a != 1.0 else "") + (f" pf {beta:g}" if beta else "") + (f" release {r:g}" if r else "")
                    fns[label] = lambda p, spec, clean, net=net, a=a, beta=beta, r=r: _reshaped(_student_gains(net, spec), a, beta, r)
    return _score_gains(fns, log, split=split, dnsmos=dnsmos)


def with_teacher_bands(student, teacher, expand, lo: int, hi: int):
    """The student's per-bin gains (B, T, F) with the bins of bands ``lo`` to ``hi - 1`` taken from the
    teacher's band gains (B, T, bands), ``expand`` the (bands x F) expansion matrix."""
    g = student.clone()
    bins = expand[lo:hi].sum(0) > 0
    g[..., bins] = (teacher @ expand)[..., bins]
    return g


def gains_for(out, spec):
    """Complex per-bin gains that turn ``spec`` into ``out`` (a bin of ``spec`` that is exactly 0 gets 0)."""
    import torch

    nonzero = spec != 0
    return torch.where(nonzero, out / torch.where(nonzero, spec, torch.ones_like(spec)), torch.zeros_like(spec))


def real_gains_for(out, spec):
    """Real per-bin gains ``|out| / |spec|`` clipped to [0, 1]: ``out``'s magnitudes, ``spec``'s phase."""
    return (out.abs() / spec.abs().clamp(min=1e-8)).clamp(0.0, 1.0)


def teacher_output_spectrum(teacher: Teacher, x: np.ndarray):
    """DeepFilterNet3's output for ``x``, resynthesised and analysed with our STFT: complex (1, T, F)."""
    import torch

    from . import fullband

    return fullband.stft(torch.from_numpy(teacher.enhanced(x))[None])


def with_teacher_bins(student, spec, teacher_spec, lo: int, hi: int):
    """Per-bin complex gains (B, T, F) that give the student's gains times ``spec`` in every bin but
    ``lo`` to ``hi - 1``, and ``teacher_spec`` there (a bin of ``spec`` that is exactly 0 stays 0)."""
    g = student.to(spec.dtype).clone()
    g[..., lo:hi] = gains_for(teacher_spec[..., lo:hi], spec[..., lo:hi])
    return g


def with_teacher_bin_gains(student, spec, teacher_spec, lo: int, hi: int):
    """The student's per-bin gains (B, T, F) with bins ``lo`` to ``hi - 1`` replaced by the teacher's
    real per-bin gains ``|teacher_spec| / |spec|`` clipped to [0, 1] (as ``bin_gains`` gives them):
    the teacher's magnitudes there, the noisy phase."""
    g = student.clone()
    g[..., lo:hi] = real_gains_for(teacher_spec[..., lo:hi], spec[..., lo:hi])
    return g


def band_gap(
    path: Path,
    ranges: list[tuple[int, int]],
    log=print,
    split: str = "dev",
    dnsmos: bool = False,
    bin_ranges: list[tuple[int, int]] = (),
    gain_bin_ranges: list[tuple[int, int]] = (),
) -> dict:
    """Where a gains-only checkpoint loses to its teacher: the scores of its gains, of the teacher's
    projected gains, and of its gains with the teacher's in each band range (lo, hi) put in. The
    share of the teacher's lead that a range wins back says which bands a better student must fix.
    ``bin_ranges``: rows with the teacher's *output* (its deep filter's work included, resynthesised
    and analysed with our STFT) in STFT bins lo to hi - 1 instead: what a deep filter on the low
    bins that matched the teacher's could add on top of the student's gains. ``gain_bin_ranges``:
    rows with the teacher's real per-bin gains there (its output magnitude, the noisy phase): what
    bounded per-bin gains could add."""
    net, ck = _gains_only_net(path)
    teacher = Teacher()
    memo: dict = {}

    def gains(p, spec):  # each pair's student and teacher gains (and output), computed once for all the rows
        if memo.get("pair") is not p:
            memo.clear()
            memo["pair"] = p
            memo["student"], memo["teacher"] = _student_gains(net, spec), _teacher_gains(teacher, p, spec)
            memo["output"] = teacher_output_spectrum(teacher, p.noisy)[:, : spec.shape[1]] if bin_ranges or gain_bin_ranges else None
        return memo["student"], memo["teacher"], memo["output"]

    fns = {
        f"{Path(path).name} (step {ck['step']})": lambda p, spec, clean: gains(p, spec)[0],
        "deepfilternet3_projected": lambda p, spec, clean: gains(p, spec)[1] @ net.erb_expand,
    }
    for lo, hi in ranges:
        fns[f"with the teacher's bands {lo}-{hi - 1}"] = lambda p, spec, clean, lo=lo, hi=hi: with_teacher_bands(*gains(p, spec)[:2], net.erb_expand, lo, hi)
    def spliced(p, spec, lo, hi, splice=with_teacher_bins):
        student, _, output = gains(p, spec)
        return splice(student, spec, output, lo, hi)

    for lo, hi in bin_ranges:
        fns[f"with the teacher's output, bins {lo}-{hi - 1}"] = lambda p, spec, clean, lo=lo, hi=hi: spliced(p, spec, lo, hi)
    for lo, hi in gain_bin_ranges:
        fns[f"with the teacher's per-bin gains, bins {lo}-{hi - 1}"] = lambda p, spec, clean, lo=lo, hi=hi: spliced(p, spec, lo, hi, with_teacher_bin_gains)
    return _score_gains(fns, log, split=split, dnsmos=dnsmos)


def recipe_losses(paths: list[Path], examples: int = 32, seed: int = 10_001, log=print) -> dict:
    """The training recipe's own loss terms (mag, cplx, gain at 0.2) of gains-only checkpoints on
    fixed dev-split mixtures: to set beside ``score``, which measures what the evaluation measures."""
    import torch

    from . import train
    from .mixing import MixConfig, Mixer

    cfg = json.loads((Path(__file__).resolve().parent / "configs" / "noisenil_fb.json").read_text())
    mixer = Mixer(MixConfig.from_dict({**cfg["mix"], "seed": seed, "split": "dev"}))
    pairs = [mixer.example(i) for i in range(examples)]
    noisy = torch.stack([torch.from_numpy(e["noisy"]) for e in pairs])
    clean = torch.stack([torch.from_numpy(e["clean"]) for e in pairs])
    out = {}
    for path in paths:
        net, ck = _gains_only_net(path)
        with torch.no_grad():
            parts = {k: float(v) for k, v in train.losses(net, noisy, clean, {"mag": 1.0, "cplx": 1.0, "gain": 0.2}).items()}
        out[str(path)] = parts
        log(f"{Path(path).name} (step {ck['step']}) " + "  ".join(f"{k} {v:.4f}" for k, v in parts.items()))
    return out


def _ranges(texts: list[str], flag: str, last: int, example: str) -> list[tuple[int, int]] | None:
    """``FIRST-LAST`` arguments as half-open (first, last + 1) ranges, or None after a one-line error."""
    out = []
    for text in texts:
        first, _, end = text.partition("-")
        if not (first.isdigit() and end.isdigit() and 0 <= int(first) <= int(end) <= last):
            print(f"error: {flag} {text!r}: want FIRST-LAST with 0 <= FIRST <= LAST <= {last}, e.g. {example}", file=sys.stderr)
            return None
        out.append((int(first), int(end) + 1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.distill", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="mixtures with DeepFilterNet3 teacher gains, for a recipe's 'cache'")
    b.add_argument("out", type=Path)
    b.add_argument("--config", type=Path, default=Path(__file__).resolve().parent / "configs" / "noisenil_fb.json", help="recipe whose 'mix' settings to use")
    b.add_argument("--examples", type=int, default=10000)
    b.add_argument("--seed", type=int, default=7)
    b.add_argument("--workers", type=int, default=2)
    bn = sub.add_parser("bins", help="add the teacher's per-bin gains on the lowest bins to a built cache (for 'teacher_bins')")
    bn.add_argument("cache", type=Path)
    bn.add_argument("--bins", type=int, default=NB_DF)
    bn.add_argument("--workers", type=int, default=2)
    lv = sub.add_parser("live", help="label mixtures into a ring that a recipe's 'live' key trains on, until killed")
    lv.add_argument("out", type=Path)
    lv.add_argument("--config", type=Path, required=True, help="the recipe with the 'live' key (its mix, seed, capacity; per-bin gains too when its loss has 'teacher_bins')")
    lv.add_argument("--workers", type=int, default=2)
    lv.add_argument("--capacity", type=int, help="ring slots (default: the recipe's live.capacity)")
    lv.add_argument("--stop", type=int, help="stop after this many mixtures per worker (default: run until killed)")
    lv.add_argument("--archive", type=Path, default=ARCHIVE, help="DeepFilterNet3_onnx.tar.gz")
    lv.add_argument("--first", type=int, default=0, help="label mixtures from this index on (a sitting resumed on a fresh machine: past the ones it has drawn)")
    bd = sub.add_parser("bounds", help="what gains-only models could reach on the dev pairs")
    bd.add_argument("--dnsmos", action="store_true", help="also DNSMOS SIG/BAK/OVRL and the noise cut in pauses (slower)")
    sc = sub.add_parser("score", help="the same scores for gains-only training checkpoints")
    sc.add_argument("checkpoints", type=Path, nargs="+")
    sc.add_argument("--gain-exponent", type=float, nargs="+", default=[1.0], help="also score the band gains raised to these powers (1: as trained)")
    sc.add_argument("--post-filter", type=float, nargs="+", default=[0.0], help="also score with the PercepNet/DeepFilterNet post-filter of these betas (0: none; DeepFilterNet uses 0.02)")
    sc.add_argument("--release", type=float, nargs="+", default=[0.0], help="also score with RNNoise's limit on how fast gains fall, g_t >= ALPHA g_{t-1}, for these ALPHAs (0: none; RNNoise uses 0.6)")
    sc.add_argument("--split", choices=("dev", "train"), default="dev", help="train: the same recipe from the train split, to tune settings without the dev pairs")
    sc.add_argument("--dnsmos", action="store_true", help="also DNSMOS SIG/BAK/OVRL and the noise cut in pauses (slower)")
    sc.add_argument("--without-bin-head", action="store_true", help="also score each checkpoint with per-bin gains with its bin head at zero (its band gains alone)")
    sc.add_argument("--without-pitch", action="store_true", help="also score each checkpoint with harmonicity inputs (net 'pitch') with them at zero: how much it leans on them")
    sc.add_argument("--with-input", action="store_true", help="also a row for the noisy input itself (unit gains)")
    sc.add_argument("--with-teacher", action="store_true", help="also a row for DeepFilterNet3's output projected on the ERB bands (the band teacher term's target)")
    lo = sub.add_parser("losses", help="the recipe's own loss terms of checkpoints on 32 dev-split mixtures")
    lo.add_argument("checkpoints", type=Path, nargs="+")
    gp = sub.add_parser("gap", help="which ERB bands a gains-only checkpoint loses to the teacher in")
    gp.add_argument("checkpoint", type=Path)
    gp.add_argument("--bands", nargs="+", default=["0-12", "13-24", "25-31"], help=f"band ranges FIRST-LAST (of 0-{BANDS - 1}) to take from the teacher, one row each")
    gp.add_argument("--output-bins", nargs="+", default=[], help=f"also rows with the teacher's output (deep filter included) in STFT bins FIRST-LAST (of 0-{N_FFT // 2}), e.g. 0-95: what a deep filter could add")
    gp.add_argument("--gain-bins", nargs="+", default=[], help=f"also rows with the teacher's real per-bin gains (|output| / |input|, noisy phase) in STFT bins FIRST-LAST (of 0-{N_FFT // 2}): what bounded per-bin gains could add")
    gp.add_argument("--split", choices=("dev", "train"), default="dev", help="train: the train-split tuning set")
    gp.add_argument("--dnsmos", action="store_true", help="also DNSMOS SIG/BAK/OVRL and the noise cut in pauses (slower)")
    args = ap.parse_args(argv)
    if args.cmd == "bounds":
        bounds(dnsmos=args.dnsmos)
        return 0
    if args.cmd == "gap":
        if not args.checkpoint.is_file():
            print(f"error: {args.checkpoint}: no such checkpoint", file=sys.stderr)
            return 2
        ranges = _ranges(args.bands, "--bands", BANDS - 1, "0-12")
        bin_ranges = _ranges(args.output_bins, "--output-bins", N_FFT // 2, "0-95")
        gain_bin_ranges = _ranges(args.gain_bins, "--gain-bins", N_FFT // 2, "0-95")
        if ranges is None or bin_ranges is None or gain_bin_ranges is None:
            return 2
        band_gap(args.checkpoint, ranges, split=args.split, dnsmos=args.dnsmos, bin_ranges=bin_ranges, gain_bin_ranges=gain_bin_ranges)
        return 0
    if args.cmd in ("score", "losses"):
        for path in args.checkpoints:
            if not path.is_file():
                print(f"error: {path}: no such checkpoint", file=sys.stderr)
                return 2
        if args.cmd == "score":
            if any(not 0.1 <= a <= 4.0 for a in args.gain_exponent):
                print(f"error: --gain-exponent {args.gain_exponent}: each must lie in [0.1, 4]", file=sys.stderr)
                return 2
            if any(not 0.0 <= b <= 1.0 for b in args.post_filter):
                print(f"error: --post-filter {args.post_filter}: each must lie in [0, 1]", file=sys.stderr)
                return 2
            if any(not 0.0 <= r < 1.0 for r in args.release):
                print(f"error: --release {args.release}: each must lie in [0, 1)", file=sys.stderr)
                return 2
            score_checkpoints(args.checkpoints, gain_exponents=tuple(args.gain_exponent), post_filters=tuple(args.post_filter), releases=tuple(args.release), split=args.split, dnsmos=args.dnsmos, without_bin_head=args.without_bin_head, without_pitch=args.without_pitch, with_input=args.with_input, with_teacher=args.with_teacher)
        else:
            recipe_losses(args.checkpoints)
        return 0
    if args.cmd == "bins":
        if not (args.cache / "cache.json").is_file():
            print(f"error: {args.cache}: no built cache (cache.json missing); run python -m models.distill build first", file=sys.stderr)
            return 2
        if not 1 <= args.bins <= N_FFT // 2 + 1:
            print(f"error: --bins {args.bins}: must lie in [1, {N_FFT // 2 + 1}]", file=sys.stderr)
            return 2
        build_bins(args.cache, args.bins, args.workers)
        return 0
    if args.cmd == "live":
        try:
            recipe = json.loads(args.config.read_text())
            mix, capacity = {**recipe["mix"], "seed": recipe["live"]["seed"]}, args.capacity or recipe["live"]["capacity"]
            bins = live_bins(recipe)
        except (OSError, KeyError, json.JSONDecodeError) as e:
            print(f"error: {args.config}: {e!r} (a recipe with mix and live.seed, live.capacity)", file=sys.stderr)
            return 2
        if not args.archive.is_file():
            print(f"error: {args.archive}: DeepFilterNet3 archive not found", file=sys.stderr)
            return 2
        if args.first < 0:
            print(f"error: --first {args.first}: a mixture index, must be >= 0", file=sys.stderr)
            return 2
        live(args.out, mix, capacity, args.workers, args.stop, args.archive, bins=bins, first=args.first)
        return 0
    try:
        mix = {**json.loads(args.config.read_text())["mix"], "seed": args.seed}
    except (OSError, KeyError, json.JSONDecodeError) as e:
        print(f"error: {args.config}: {e}", file=sys.stderr)
        return 2
    build(args.out, mix, args.examples, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
