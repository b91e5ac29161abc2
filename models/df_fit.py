"""A deep filter on top of frozen gains, fitted by least squares to DeepFilterNet3's low bins.

``python -m models.distill gap CHECKPOINT --output-bins 0-95`` says what the teacher's output in the
96 deep-filter bins would add to the shipped gains. Whether our own deep-filter head can get it
from the frozen trunk needs no training steps: the head is linear in the trunk's output h,
``c_k(t) = W_k [h(t); 1]`` (complex W, taps k = 0 .. order - 1), and the filter's output
``sum_k c_k(t) X(t - k)`` is linear in W. So per bin the head that best matches a target
spectrum (the teacher's output, or the clean speech), given the frozen trunk and gains, solves
normal equations with ``order x (channels + 1)`` complex unknowns (387 for the shipped net).

``python -m models.df_fit CHECKPOINT --cache DIR --examples 2000 --out OUT.pt`` fits it on a
teacher cache's first mixtures (``python -m models.distill build``; the teacher's output is
computed here), writes a checkpoint with the deep filter switched on (export it with
``python -m models.train RECIPE --export --checkpoint OUT.pt`` from a recipe whose
``export_deep_filter`` is true), and scores it beside the gains alone on the train-split tuning set. It also reports, per bin, the share of the target's residual (what
the gains leave) that the fitted filter does not explain.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np


def _teacher_part(args):
    folder, start, stop, nb = args
    import torch

    from .distill import Teacher, teacher_output_spectrum

    torch.set_num_threads(1)
    teacher = Teacher()
    noisy = np.load(Path(folder) / "noisy.npy", mmap_mode="r")
    out = [teacher_output_spectrum(teacher, np.asarray(noisy[i], np.float32))[0, :, :nb].numpy() for i in range(start, stop)]
    return start, np.stack(out)


def teacher_low_bins(folder: Path, examples: int, nb: int, workers: int = 2, log=print) -> np.ndarray:
    """DeepFilterNet3's output for a cache's mixtures 0 .. examples - 1, in our STFT: (n, T, nb) complex64."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(str(folder), a, min(a + 100, examples), nb) for a in range(0, examples, 100)]
    parts, t0 = {}, time.time()
    with ProcessPoolExecutor(workers) as pool:
        for start, arr in pool.map(_teacher_part, jobs):
            parts[start] = arr
            log(f"teacher: {sum(len(a) for a in parts.values())}/{examples} mixtures, {time.time() - t0:.0f} s")
    return np.concatenate([parts[a] for a in sorted(parts)]).astype(np.complex64)


def accumulate(net, noisy: np.ndarray, target_low: np.ndarray, weight_exponent: float = 0.0, batch: int = 25, log=None) -> dict:
    """Normal equations of the deep-filter head, per bin: ``A = Z^H w Z``, ``b = Z^H w r``, with
    rows ``Z = [h~ X(t), h~ X(t-1), ...]`` and ``r`` the target minus the gain-masked input, over
    every frame of ``noisy`` (n, samples); ``w = |X|^(-2 weight_exponent)`` (0: plain squared error)."""
    import torch

    from . import fullband

    nb, order, c = net.df_bins, net.df_order, net.channels + 1
    d = order * c
    A = np.zeros((nb, d, d), np.complex128)
    b = np.zeros((nb, d), np.complex128)
    rr = np.zeros(nb)
    t0 = time.time()
    for s in range(0, len(noisy), batch):
        spec = fullband.stft(torch.from_numpy(np.asarray(noisy[s : s + batch], np.float32)))
        re, im = spec.real.contiguous(), spec.imag.contiguous()
        with torch.no_grad():
            feat = net.features_sequence(re, im)
            h = net.hidden_sequence(feat)
            g = net.per_bin_gains(h, feat)[..., :nb].numpy()  # the gains the net applies, its per-bin head's too
        x = spec[..., :nb].numpy()
        t = x.shape[1]
        r = (np.asarray(target_low[s : s + batch])[:, :t] - g * x).reshape(-1, nb)
        ht = np.concatenate([h.transpose(1, 2).numpy(), np.ones((len(x), t, 1), np.float32)], -1).reshape(-1, c)
        hist = np.stack([np.pad(x, ((0, 0), (k, 0), (0, 0)))[:, :t] for k in range(order)], -1).reshape(-1, nb, order)
        w = ((np.abs(x) ** 2 + 1e-6) ** -weight_exponent).reshape(-1, nb) if weight_exponent else np.ones(r.shape, np.float32)
        for f in range(nb):
            z = (hist[:, f, :, None] * ht[:, None, :]).reshape(len(ht), d).astype(np.complex64)
            zw = z * w[:, f, None]
            A[f] += zw.conj().T @ z
            b[f] += zw.conj().T @ r[:, f]
            rr[f] += float(np.sum(w[:, f] * np.abs(r[:, f]) ** 2))
        if log:
            log(f"normal equations: {min(s + batch, len(noisy))}/{len(noisy)} mixtures, {time.time() - t0:.0f} s")
    return {"A": A, "b": b, "rr": rr}


def solve(ne: dict, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin head weights (nb, order * (channels + 1)) complex, with a ridge of ``ridge`` times the
    mean of A's diagonal, and the share of each bin's residual energy left unexplained."""
    A, b, rr = ne["A"], ne["b"], ne["rr"]
    nb, d = b.shape
    W = np.zeros((nb, d), np.complex128)
    left = np.zeros(nb)
    for f in range(nb):
        scale = np.real(np.trace(A[f])) / d
        W[f] = np.linalg.solve(A[f] + ridge * scale * np.eye(d), b[f])
        explained = 2 * np.real(np.vdot(b[f], W[f])) - np.real(W[f].conj() @ A[f] @ W[f])
        left[f] = 1.0 - explained / max(rr[f], 1e-30)
    return W, left


def set_head(net, W: np.ndarray) -> None:
    """Write fitted weights into ``df_head`` (output channel k * 2 * nb + part * nb + bin, part 0:
    real, 1: imaginary; the last input column is the bias) and switch the deep filter on."""
    import torch

    nb, order, c = net.df_bins, net.df_order, net.channels
    Wk = W.reshape(nb, order, c + 1)
    weight, bias = net.df_head.weight.data, net.df_head.bias.data
    for k in range(order):
        for part, values in ((0, Wk.real), (1, Wk.imag)):
            rows = k * 2 * nb + part * nb + np.arange(nb)
            weight[rows, :, 0] = torch.from_numpy(np.ascontiguousarray(values[:, k, :c])).float()
            bias[rows] = torch.from_numpy(np.ascontiguousarray(values[:, k, c])).float()
    net.df_head.weight.requires_grad_(True)
    net.df_head.bias.requires_grad_(True)
    net.deep_filter = True


def output_gains(net):
    """For ``distill._score_gains``: the complex per-bin gains that turn the noisy spectrum into the net's output."""
    import torch

    from .distill import gains_for

    def fn(pair, spec, clean):
        o_re, o_im, _ = net.forward_sequence(spec.real.contiguous(), spec.imag.contiguous())
        return gains_for(torch.complex(o_re, o_im), spec)

    return fn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.df_fit", description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="a gains-only models.train checkpoint")
    ap.add_argument("--cache", type=Path, required=True, help="a teacher cache (python -m models.distill build)")
    ap.add_argument("--examples", type=int, default=2000, help="its first N mixtures")
    ap.add_argument("--target", choices=("teacher", "clean"), default="teacher", help="fit DeepFilterNet3's output (default) or the clean speech")
    ap.add_argument("--ridge", type=float, default=1e-3)
    ap.add_argument("--weight-exponent", type=float, default=0.0, help="weight each bin's error by |X|^(-2 p) (0: plain squared error)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="checkpoint to write, with the fitted deep filter")
    args = ap.parse_args(argv)
    for path, what in ((args.checkpoint, "no such checkpoint"), (args.cache / "noisy.npy", "no teacher cache here (python -m models.distill build)")):
        if not path.is_file():
            print(f"error: {path}: {what}", file=sys.stderr)
            return 2
    import torch

    from .distill import _gains_only_net, _score_gains, _student_gains
    from .train import save

    net, ck = _gains_only_net(args.checkpoint)
    noisy = np.load(args.cache / "noisy.npy", mmap_mode="r")
    if not 1 <= args.examples <= len(noisy):
        print(f"error: --examples {args.examples}: the cache holds {len(noisy)}", file=sys.stderr)
        return 2
    if args.target == "teacher":
        target = teacher_low_bins(args.cache, args.examples, net.df_bins, args.workers)
    else:
        from . import fullband

        clean = np.load(args.cache / "clean.npy", mmap_mode="r")
        target = np.concatenate([fullband.stft(torch.from_numpy(np.asarray(clean[a : a + 100], np.float32)))[..., : net.df_bins].numpy() for a in range(0, args.examples, 100)])
    torch.set_num_threads(args.workers)
    ne = accumulate(net, noisy[: args.examples], target, args.weight_exponent, log=print)
    W, left = solve(ne, args.ridge)
    print("unexplained share of the residual, bins 0/5/10/25/50/95: " + " / ".join(f"{left[f]:.2f}" for f in (0, 5, 10, 25, 50, 95) if f < len(left)))
    fitted = copy.deepcopy(net)
    set_head(fitted, W)
    config = {**ck["config"], "net": {**ck["config"]["net"], "deep_filter": True}}
    fit = {"target": args.target, "examples": args.examples, "cache": str(args.cache), "ridge": args.ridge, "weight_exponent": args.weight_exponent}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save(args.out, model=fitted.state_dict(), step=ck["step"], config=config, seconds=ck.get("seconds", 0.0), df_fit=fit)
    print(f"wrote {args.out}")
    _score_gains(
        {
            f"{args.checkpoint.name} (gains only)": lambda p, spec, clean: _student_gains(net, spec),
            f"with the fitted deep filter ({args.target})": output_gains(fitted),
        },
        split="train",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
