"""One comparison table from several ``noisenil eval`` outputs on the same dev set:
``python -m models.zoo.report OUT.md EVAL.md [EVAL.md ...]``.

Rows are taken in the order given (first occurrence of a model wins). Every input must have the
same "noisy (input)" row, which proves it scored the same pairs; the command refuses otherwise.
Tables written before the parameters/latency/mode columns existed get those cells from the
model's manifest where it has one, else "-".
"""

from __future__ import annotations

import sys
from pathlib import Path

from plugin_host.evaluation import NOISY

COLUMNS = 13


def _rows(text: str) -> tuple[list[str], list[str], str]:
    """Summary rows, per-SNR rows (without headers) and the set description of one eval output."""
    lines = text.splitlines()
    tables, current = [], []
    for line in lines:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    summary, per_snr = tables[0][2:], tables[1][2:]
    description = next((line for line in lines if line.startswith("dev:") or line.startswith("set:")), "")
    return summary, per_snr, description


def _catalogue_cells(name: str) -> list[str] | None:
    """Parameters, latency and mode of a third-party model that is not installed here, from the
    catalogue ``noisenil models add`` installs it by (its STFT and lookahead give the latency)."""
    from plugin_host.registry import manifest_latency_samples
    from plugin_host.thirdparty import CATALOGUE

    entry = next((u for u in CATALOGUE if u.name == name and u.manifest), None)
    if entry is None:
        return None
    m = entry.manifest
    samples = manifest_latency_samples(m)
    return ["-", f"{1000 * samples / m['sample_rate']:.0f}", "streaming" if m.get("streaming", True) else "offline"]


def _complete(row: str) -> str:
    cells = row.strip().strip("|").split(" | ")
    cells = [c.strip() for c in cells]
    if len(cells) < COLUMNS:
        name = cells[0]
        extra = ["-", "-", "-"]
        try:
            from plugin_host.registry import DENOISERS

            m = DENOISERS.get(name)
            params = m.raw.get("parameters")
            extra = [f"{params:,d}" if isinstance(params, int) else "-", f"{m.latency_ms:.0f}", "streaming" if m.streaming else "offline"]
        except Exception:  # rnnoise (not a manifest) or a model not installed here
            extra = _catalogue_cells(name) or extra
        cells += extra
    return "| " + " | ".join(cells) + " |"


def merge(files: list[Path]) -> str:
    summary, per_snr, seen, noisy, description = [], [], set(), None, ""
    head_snr = None
    for f in files:
        text = f.read_text(encoding="utf-8")
        rows, snr_rows, desc = _rows(text)
        description = description or desc
        if head_snr is None:
            lines = [line for line in text.splitlines() if line.startswith("| model | @")]
            head_snr = lines[0] if lines else None
        for row, srow in zip(rows, snr_rows):
            name = row.split(" | ")[0][2:].strip()
            if name == NOISY:
                core = " | ".join(row.split(" | ")[1:9])
                if noisy is None:
                    noisy = core
                elif core != noisy:
                    raise SystemExit(f"error: {f}: its noisy row differs from the first file's: not the same dev pairs")
            if name in seen:
                continue
            seen.add(name)
            summary.append(_complete(row))
            per_snr.append(srow)
    head = "| model | PESQ-WB | STOI | SI-SDR out (dB) | SI-SDR gain (dB) | DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL | noise cut in pauses (dB) | RTF | parameters | latency (ms) | mode |"
    out = [head, "|" + "---|" * COLUMNS, *summary, "", "Per input SNR (SI-SDR out in dB / PESQ-WB):", ""]
    if head_snr:
        out += [head_snr, "|" + "---|" * (head_snr.count("|") - 1), *per_snr]
    out += ["", description, "", "From: " + ", ".join(f"`{f.as_posix()}`" for f in files)]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    if len(args) < 2:
        print("usage: python -m models.zoo.report OUT.md EVAL.md [EVAL.md ...]", file=sys.stderr)
        return 2
    text = merge([Path(a) for a in args[1:]])
    Path(args[0]).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
