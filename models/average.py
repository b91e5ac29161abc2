"""Average the weights of checkpoints of one net (a "model soup", Wortsman et al. 2022).

    python -m models.average OUT.pt A.pt B.pt [...]

Runs of one recipe from the same start land in one basin, and the mean of their weights often
scores better than either (the shipped ``noisenil_fb`` is the mean of two lent-GPU runs of
``noisenil_fb_gpu_gru``, see its model card). The output keeps the first checkpoint's other keys
(config, step) without an optimizer state, and lists its sources under ``averaged_from``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


class AverageError(ValueError):
    """Checkpoints that cannot be averaged (another net, a missing file)."""


def average(paths: list[Path]) -> dict:
    """The first checkpoint with its ``model`` weights replaced by the mean over all of them."""
    if len(paths) < 2:
        raise AverageError(f"{len(paths)} checkpoint(s) given: averaging needs at least 2")
    cks = []
    for p in paths:
        try:
            cks.append(torch.load(p, weights_only=False, map_location="cpu"))
        except (OSError, RuntimeError, EOFError) as e:
            raise AverageError(f"{p}: cannot read a checkpoint ({e})") from e
        if not isinstance(cks[-1], dict) or "model" not in cks[-1]:
            raise AverageError(f"{p}: not a training checkpoint (no 'model' weights)")
    first = cks[0]["model"]
    for p, ck in zip(paths[1:], cks[1:], strict=True):
        other = ck["model"]
        if other.keys() != first.keys():
            raise AverageError(f"{p}: another net than {paths[0]} (tensors {sorted(set(other) ^ set(first))[:3]} differ)")
        bad = [k for k in first if other[k].shape != first[k].shape]
        if bad:
            raise AverageError(f"{p}: another net than {paths[0]} ({bad[0]}: {tuple(other[bad[0]].shape)} against {tuple(first[bad[0]].shape)})")
    mean = {}
    for k, v in first.items():
        if v.is_floating_point():
            mean[k] = (sum(ck["model"][k].double() for ck in cks) / len(cks)).to(v.dtype)
        else:  # counters and the like: the first one's
            mean[k] = v.clone()
    return {**cks[0], "model": mean, "optimizer": None, "averaged_from": [str(p) for p in paths]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.average", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("checkpoints", type=Path, nargs="+")
    args = ap.parse_args(argv)
    if args.out.resolve() in {p.resolve() for p in args.checkpoints}:
        print(f"error: {args.out}: is one of the inputs; write the average elsewhere", file=sys.stderr)
        return 2
    try:
        ck = average(args.checkpoints)
    except AverageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save(ck, tmp)
    tmp.replace(args.out)
    print(f"wrote {args.out}: the mean of {len(args.checkpoints)} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
