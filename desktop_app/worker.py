"""Background work: load a recording, denoise it with the engine, build spectrograms as it goes.

The GUI never owns DSP: everything here calls ``plugin_host`` (the same chain and pipeline as
``noisenil render``). Work runs in a QThread, reports progress and partial spectrograms, and
stops at the next chunk when cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import weakref

import numpy as np
from PySide6.QtCore import QThread, Signal

from plugin_host import NoiseNilError
from plugin_host.audio_io import probe, read_chunks
from plugin_host.clipping import ClipCounter
from plugin_host.dehum import HumFinder
from plugin_host.loudness import LoudnessMeter
from plugin_host.chain import scan_input
from plugin_host.render import RenderOptions, render_file

from .session import Recording, Status
from .settings import cache_dir

log = logging.getLogger("noisenil.gui")
N_FFT = 1024
MAX_COLUMNS = 6000  # spectrogram width cap: long files get a coarser hop
CHUNK_SECONDS = 2.0
FLOOR_DB = -100.0


class Spectrogram:
    """Incremental magnitude spectrogram (dB) of a mono mixdown, ``hop`` samples per column."""

    def __init__(self, hop: int):
        self.hop = hop
        self.window = np.hanning(N_FFT).astype(np.float32)
        self.columns: list[np.ndarray] = []
        self._buf = np.zeros(0, np.float32)
        self._offset = 0  # absolute sample index of _buf[0]

    def add(self, x: np.ndarray, final: bool = False) -> None:
        mono = x.mean(axis=0) if x.ndim == 2 else x
        self._buf = np.concatenate([self._buf, mono.astype(np.float32)])
        if final:
            self._buf = np.concatenate([self._buf, np.zeros(N_FFT, np.float32)])
        first = len(self.columns) * self.hop - self._offset  # start of the next column in _buf
        count = max(0, (len(self._buf) - first - N_FFT) // self.hop + 1)
        if count:
            frames = np.stack([self._buf[first + k * self.hop : first + k * self.hop + N_FFT] for k in range(count)])
            spec = np.abs(np.fft.rfft(frames * self.window, axis=1)) / (N_FFT / 4)
            self.columns.extend(np.maximum(20 * np.log10(spec + 1e-10), FLOOR_DB).astype(np.float32))
        keep_from = len(self.columns) * self.hop - self._offset
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._offset += keep_from

    def array(self) -> np.ndarray:
        return np.asarray(self.columns, np.float32) if self.columns else np.zeros((0, N_FFT // 2 + 1), np.float32)


SPILL_BYTES = 256 << 20  # audio bigger than this (12 min of 48 kHz stereo) lives in a file-backed map
SPILL_MARGIN_BYTES = 1 << 30  # ...when the disk keeps this much free beside it


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def audio_buffer(channels: int, frames: int) -> np.ndarray:
    """A (channels, frames) float32 array for a recording's audio. A long one is mapped from a
    file in the cache folder, deleted at once (it lives as long as the mapping), so that the
    system can page it out and back instead of swapping or running out of memory: three
    two-hour stereo recordings are 16 GB as their originals and cleaned copies. While there is
    memory to spare, its pages stay in memory, and playback reads them as it reads any array."""
    shape = (channels, max(0, frames))
    size = 4 * shape[0] * shape[1]
    if size <= SPILL_BYTES:
        return np.empty(shape, np.float32)
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(folder).free < size + SPILL_MARGIN_BYTES:
            log.info("keeping %.0f MB of audio in memory: the cache folder %s lacks the room", size / 2**20, folder)
            return np.empty(shape, np.float32)
        if os.name == "nt":  # what a crash left there (files in use by another NoiseNil cannot be deleted)
            for stale in folder.glob("audio-*.f32"):
                _remove_quietly(str(stale))
        fd, name = tempfile.mkstemp(dir=folder, prefix="audio-", suffix=".f32")
        try:
            os.ftruncate(fd, size)
            data = np.memmap(name, np.float32, "w+", shape=shape)
        finally:
            os.close(fd)
            if os.name != "nt":  # the mapping keeps the file; nothing is left behind, even after a crash
                os.unlink(name)
        if os.name == "nt":  # an open file cannot be deleted there: when the array goes
            weakref.finalize(data, _remove_quietly, name)
        return data
    except OSError as exc:
        log.info("keeping %.0f MB of audio in memory: %s", size / 2**20, exc)
        return np.empty(shape, np.float32)


class Filling:
    """A (channels, n) float32 array filled chunk by chunk, allocated once at the expected length
    (a list of chunks joined at the end held the audio twice; a long one is file-backed, see
    ``audio_buffer``). It grows if the estimate was short; ``array()`` is what was filled."""

    def __init__(self, channels: int, expected: int):
        self.data = audio_buffer(channels, expected)
        self.n = 0

    def add(self, chunk: np.ndarray) -> None:
        end = self.n + chunk.shape[1]
        if end > self.data.shape[1]:
            grown = audio_buffer(self.data.shape[0], max(end, self.data.shape[1] + self.data.shape[1] // 4))
            grown[:, : self.n] = self.data[:, : self.n]
            self.data = grown
        self.data[:, self.n : end] = chunk
        self.n = end

    def array(self) -> np.ndarray:
        return self.data[:, : self.n]


def hop_for(frames: int) -> int:
    return max(N_FFT // 2, int(np.ceil(frames / MAX_COLUMNS)))


def classify(rec: Recording) -> str:
    """The dominant noise class of a loaded recording, or "" when no classifier is installed."""
    from plugin_host import CLASSIFIERS
    from plugin_host.auto import dominant_label

    if "noise_classifier" not in CLASSIFIERS.names():
        return ""
    try:
        return dominant_label(rec.noisy, rec.sample_rate) or ""  # "" too for a clip too short to classify
    except NoiseNilError as exc:
        log.warning("classifier unavailable: %s", exc)
        return ""


def settings_key(options: RenderOptions) -> tuple:
    return (options.model, options.preset, options.attenuation_limit_db, options.dehum, options.declip, options.level)


class RenderJob(QThread):
    """Load (once) and denoise one recording with the given options."""

    progress = Signal(float)
    partial = Signal()
    done = Signal()
    failed = Signal(str)

    def __init__(self, recording: Recording, options: RenderOptions, parent=None):
        super().__init__(parent)
        self.recording, self.options = recording, options
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True

    def run(self) -> None:
        rec = self.recording
        try:
            if rec.noisy is None:
                self._load(rec)
            if not self._cancel:
                self._render(rec)
        except NoiseNilError as exc:
            log.warning("%s", exc)
            rec.status, rec.message = Status.FAILED, str(exc).replace(f"{rec.path}: ", "")
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a worker must report, never die silently
            log.exception("rendering %s failed", rec.path)
            rec.status, rec.message = Status.FAILED, f"unexpected error: {exc}"
            self.failed.emit(f"{rec.path}: unexpected error: {exc}")
            return
        if self._cancel:
            rec.status = Status.QUEUED if rec.cleaned is None else Status.DONE
            return
        rec.status, rec.progress = Status.DONE, 1.0
        self.done.emit()

    def _load(self, rec: Recording) -> None:
        rec.status = Status.LOADING
        info = probe(rec.path)
        rec.sample_rate = info.sample_rate
        hop = hop_for(info.frames)
        rec.spec_seconds_per_column = hop / info.sample_rate
        spec = Spectrogram(hop)
        meter, clips, hum = LoudnessMeter(info.sample_rate, info.channels), ClipCounter(info.sample_rate), HumFinder(info.sample_rate)
        audio, done, last = Filling(info.channels, info.frames), 0, time.monotonic()
        for chunk in read_chunks(info, int(CHUNK_SECONDS * info.sample_rate)):
            if self._cancel:
                return
            audio.add(chunk)
            spec.add(chunk)
            meter.add(chunk)
            clips.add(chunk)
            hum.add(chunk)
            done += chunk.shape[1]
            rec.progress = 0.3 * done / info.frames
            self.progress.emit(rec.progress)
            if time.monotonic() - last > 0.25:
                rec.spec_noisy, last = spec.array(), time.monotonic()
                self.partial.emit()
        spec.add(np.zeros((info.channels, 0), np.float32), final=True)
        rec.noisy = audio.array()
        rec.spec_noisy = spec.array()
        rec.loudness_noisy = meter.integrated_lufs()
        rec.clipped = clips.finish().describe() or ""
        rec.clip_seconds = clips.positions
        found = hum.finish()
        rec.hum = found.describe() if found else ""
        self.partial.emit()

    def _render(self, rec: Recording) -> None:
        rec.status = Status.RENDERING
        options = self.options
        if not rec.noise_label:
            rec.noise_label = classify(rec)
        if options.model == "auto":
            options = options.resolved(rec.noise_label or None)
        chain, _, _ = options.build()
        channels, n = rec.noisy.shape
        step = int(CHUNK_SECONDS * rec.sample_rate)
        # a Declip's level and a Dehum's hum, found in the whole recording first
        scan_input(chain, (rec.noisy[:, i : i + step] for i in range(0, n, step)), rec.sample_rate)
        pipe = chain.offline_pipeline(rec.sample_rate, channels)
        hop = int(round(rec.spec_seconds_per_column * rec.sample_rate))
        spec = Spectrogram(hop)
        meter = LoudnessMeter(rec.sample_rate, channels)
        cleaned, last = Filling(channels, n), time.monotonic()
        for start in range(0, n, step):
            if self._cancel:
                return
            y = pipe.push(rec.noisy[:, start : start + step])
            cleaned.add(y)
            spec.add(y)
            meter.add(y)
            rec.progress = 0.3 + 0.7 * min(1.0, (start + step) / n)
            self.progress.emit(rec.progress)
            if time.monotonic() - last > 0.25:
                rec.spec_cleaned, last = spec.array(), time.monotonic()
                self.partial.emit()
        tail = pipe.finish()
        cleaned.add(tail)
        spec.add(tail, final=True)
        meter.add(tail)
        rec.cleaned = cleaned.array()
        rec.spec_cleaned = spec.array()
        rec.loudness_cleaned = meter.integrated_lufs()
        rec.settings_key = settings_key(self.options)
        self.partial.emit()


class _Cancelled(Exception):
    """Raised from an export's progress callback to stop ``render_file`` mid-file."""


class ExportJob(QThread):
    """Render files to disk with the engine's safe writer (temporary file, then rename)."""

    progress = Signal(float)
    finished_one = Signal(str, str, str)  # source, destination, the render's notes ("" or "; "-joined)
    failed = Signal(str)
    cancelled = Signal(int, int)  # files finished, files asked for

    def __init__(self, pairs: list, options: RenderOptions, parent=None):
        super().__init__(parent)
        self.pairs, self.options = pairs, options
        self._cancel = False

    def cancel(self) -> None:
        """Stop at the next chunk: the file being written is removed (the engine's temporary file
        is never renamed into place), the ones already finished are kept."""
        self._cancel = True

    def _progress(self, i: int, n: float, seconds: float) -> None:
        if self._cancel:
            raise _Cancelled
        self.progress.emit((i + seconds / max(n, 1e-9)) / len(self.pairs))

    def run(self) -> None:
        for i, (src, dst) in enumerate(self.pairs):
            if self._cancel:
                self.cancelled.emit(i, len(self.pairs))
                return
            try:
                result = render_file(src, dst, self.options, progress=lambda s, i=i, n=probe(src).seconds: self._progress(i, n, s))
                for note in result.notes:
                    log.info("export %s: %s", src, note)
                self.finished_one.emit(str(src), str(dst), "; ".join(result.notes))
            except _Cancelled:
                self.cancelled.emit(i, len(self.pairs))
                return
            except NoiseNilError as exc:
                log.warning("export failed: %s", exc)
                self.failed.emit(str(exc))
            except OSError as exc:
                log.warning("export failed: %s", exc)
                self.failed.emit(f"{dst}: {exc.strerror or exc}")
        self.progress.emit(1.0)
