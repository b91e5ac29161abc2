"""NoiseNil's main window: open, see, hear, control, export."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from plugin_host.audio_io import READ_EXTENSIONS, WRITE_EXTENSIONS, audio_files_in, clean_name, output_mode, output_suffix
from plugin_host.render import RenderOptions

from .player import Player
from .session import Recording, Session, Status
from .settings import Settings
from .live_page import LivePage
from .views import ControlsPanel, SpectrogramView
from .worker import ExportJob, RenderJob, settings_key

log = logging.getLogger("noisenil.gui")
AUDIO_FILTER = "Audio (" + " ".join(f"*{e}" for e in READ_EXTENSIONS) + ")"
EXPORT_FILTER = "Audio (" + " ".join(f"*{e}" for e in WRITE_EXTENSIONS) + ")"


def _with_folders_opened(paths) -> list[Path]:
    """Files as they are; a folder (dropped, or named on the command line) as the audio files in it,
    recursively, as ``noisenil render`` reads one; a folder without any stays, to fail with a reason."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += (audio_files_in(p) or [p]) if p.is_dir() else [p]
    return out


def export_names(sources: list[Path], folder: Path) -> list[tuple[Path, Path]]:
    """(source, destination) in ``folder`` for each recording: ``NAME_clean.EXT``, and where two
    recordings share a name (raw/a/take.wav, raw/b/take.wav) their folder's name in front, then a
    number, so that no export overwrites another."""
    counts = Counter(clean_name(p).lower() for p in sources)
    taken: set[str] = set()
    pairs = []
    for src in sources:
        name = clean_name(src)
        if counts[name.lower()] > 1:
            name = f"{src.parent.name}-{name}" if src.parent.name else name
        stem, suffix, k = Path(name).stem, Path(name).suffix, 2
        while name.lower() in taken:
            name, k = f"{stem}-{k}{suffix}", k + 1
        taken.add(name.lower())
        pairs.append((src, folder / name))
    return pairs


class MainWindow(QMainWindow):
    all_rendered = Signal()

    def __init__(self, settings: Settings | None = None):
        super().__init__()
        self.setWindowTitle("NoiseNil")
        self.settings = settings or Settings.load()
        self.session = Session()
        self.player = Player()
        self.job: RenderJob | None = None
        self.render_settled = True  # False from a render's start until _next_job has seen it end and found nothing to start
        self.export_job: ExportJob | None = None
        self.error_boxes: list[QMessageBox] = []
        self.setAcceptDrops(True)
        self._build()
        self._rerender = QTimer(self, singleShot=True, interval=350, timeout=self._settings_settled)
        self._display = QTimer(self, interval=40, timeout=self._tick)  # the one display timer
        self._display.start()

    # layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        tabs = QTabWidget()
        self.setCentralWidget(tabs)
        clean = QWidget()
        tabs.addTab(clean, "Clean recordings")
        self.live = LivePage(self.settings)
        self.live.error.connect(self.show_error)
        tabs.addTab(self.live, "Live")
        self.tabs = tabs
        outer = QVBoxLayout(clean)
        bar = QHBoxLayout()
        self.open_button = QPushButton("Open…")
        self.play_button = QPushButton("Play  [Space]")
        self.ab_button = QPushButton("Hearing: cleaned (B)  [Tab]")
        self.loop_button = QPushButton("Loop  [L]")
        self.loop_button.setCheckable(True)
        self.export_button = QPushButton("Export…")
        self.export_all_button = QPushButton("Export all…")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)  # only while a recording renders or an export runs
        for b in (self.open_button, self.play_button, self.ab_button, self.loop_button, self.export_button, self.export_all_button):
            bar.addWidget(b)
        bar.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(260)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_button)
        outer.addLayout(bar)
        split = QSplitter(Qt.Horizontal)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(QLabel("Recordings (drop files here; Delete removes one)"))
        self.queue = QListWidget()
        self.queue.setContextMenuPolicy(Qt.ActionsContextMenu)  # right-click: remove one, or all
        remove_action = QAction("Remove from the list", self.queue, shortcut=QKeySequence.Delete, triggered=lambda: self.remove_recording())
        remove_action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        remove_all_action = QAction("Remove all", self.queue, triggered=self.remove_all)
        self.queue.addActions([remove_action, remove_all_action])
        lv.addWidget(self.queue)
        self.controls = ControlsPanel(self.settings)
        lv.addWidget(self.controls)
        split.addWidget(left)
        self.view = SpectrogramView()
        split.addWidget(self.view)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 950])
        outer.addWidget(split, 1)
        self.status = QLabel("Open or drop recordings to start.")
        self.statusBar().addWidget(self.status, 1)

        self.open_button.clicked.connect(lambda: self.open_files())
        self.play_button.clicked.connect(self.toggle_play)
        self.ab_button.clicked.connect(self.toggle_ab)
        self.loop_button.toggled.connect(self.set_looping)
        self.export_button.clicked.connect(lambda: self.export_current())
        self.export_all_button.clicked.connect(lambda: self.export_all())
        self.cancel_button.clicked.connect(self.cancel)
        self.queue.currentRowChanged.connect(self.select)
        self.controls.changed.connect(self._settings_changed)
        self.view.seek_requested.connect(self.seek)
        self.view.loop_region.sigRegionChanged.connect(self._loop_changed)
        # on this page only: on the Live page Tab moves the focus and Space presses the focused button
        for key, slot in ((Qt.Key_Space, self.toggle_play), (Qt.Key_Tab, self.toggle_ab), (Qt.Key_L, self.loop_button.toggle)):
            QShortcut(QKeySequence(key), clean, activated=slot, context=Qt.WidgetWithChildrenShortcut)
        self.clean_page = clean
        open_action = QAction("Open…", self, shortcut=QKeySequence.Open, triggered=lambda: self.open_files())
        self.addAction(open_action)
        self.resize(1280, 800)

    # opening -------------------------------------------------------------------------------------
    def open_files(self, paths=None) -> None:
        if paths is None:
            chosen, _ = QFileDialog.getOpenFileNames(self, "Open recordings", self.settings.last_open_dir, AUDIO_FILTER)
            paths = chosen
        added = 0
        for p in _with_folders_opened(paths):
            rec = self.session.add(Path(p))
            if rec is not None:
                self.queue.addItem(rec.label())
                self.queue.item(self.queue.count() - 1).setToolTip(rec.tooltip())
                added += 1
                self.settings.last_open_dir = str(Path(p).parent)
        if added and self.queue.currentRow() < 0:
            self.queue.setCurrentRow(0)
        self._next_job()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.open_files([u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()])

    # rendering -----------------------------------------------------------------------------------
    def render_options(self) -> RenderOptions:
        s = self.settings
        return RenderOptions(
            model=s.model,
            preset=s.preset or None,
            attenuation_limit_db=s.attenuation_limit_db,
            loudness_lufs=s.loudness_lufs if s.loudness_enabled else None,
            bitrate_kbps=s.bitrate_kbps or None,
            declip=s.declip,
            dehum=s.dehum,
            level=s.level,
        )

    def _needs_render(self, rec: Recording) -> bool:
        return rec.status != Status.FAILED and (rec.cleaned is None or rec.settings_key != settings_key(self.render_options()))

    def _next_job(self) -> None:
        if self.job is not None and self.job.isRunning():
            return
        self.cancel_button.setEnabled(self.export_job is not None and self.export_job.isRunning())
        selected = self.session.selected
        order = ([selected] if selected else []) + [r for r in self.session.recordings if r is not selected]
        todo = next((r for r in order if self._needs_render(r)), None)
        if todo is None:
            self.render_settled = True
            self.progress.setValue(1000)
            if self.session.all_done():
                failed = sum(r.status == Status.FAILED for r in self.session.recordings)
                total = len(self.session.recordings)
                self.status.setText(f"{total - failed} of {total} recordings rendered; {failed} failed (the list says why)." if failed else "All recordings rendered.")
                self.all_rendered.emit()
            return
        try:
            options = self.render_options()
            options.build()
        except Exception as exc:  # a bad model/preset: say so, don't start
            self.render_settled = True
            self.show_error(str(exc))
            return
        self.job = RenderJob(todo, options, self)
        self.job.progress.connect(self._job_progress)
        self.job.partial.connect(self._job_partial)
        self.job.done.connect(self._job_done)
        self.job.failed.connect(self._job_failed)
        self.job.finished.connect(self._next_job)
        todo.status = Status.LOADING
        self.render_settled = False
        self.status.setText(f"Rendering {todo.name} with {options.model}…")
        self.cancel_button.setEnabled(True)
        self.job.start()

    def _job_progress(self, value: float) -> None:
        self.progress.setValue(int(value * 1000))
        self._refresh_queue()

    def _job_partial(self) -> None:
        if self.job is not None and self.job.recording is self.session.selected:
            self.view.show_recording(self.job.recording)

    def _job_done(self) -> None:
        rec = self.job.recording
        self._refresh_queue()
        if rec is self.session.selected:
            self._show(rec)
        self.status.setText(f"{rec.name}: done ({rec.seconds:.1f} s).")

    def _job_failed(self, message: str) -> None:
        self._refresh_queue()
        self.show_error(message)

    def cancel(self) -> None:
        """Stops an export if one runs (the file being written is removed, finished ones are kept),
        otherwise the background render."""
        if self.export_job is not None and self.export_job.isRunning():
            self.export_job.cancel()
        elif self.job is not None and self.job.isRunning():
            self.job.cancel()
            self.status.setText("Cancelled.")

    def _update_cancel(self) -> None:
        running = [j for j in (self.job, self.export_job) if j is not None and j.isRunning()]
        self.cancel_button.setEnabled(bool(running))

    def _export_cancelled(self, done: int, total: int) -> None:
        self.status.setText(f"Export cancelled: {done} of {total} file(s) written; the unfinished one was removed.")

    def _settings_changed(self) -> None:
        self.settings.save()
        self._rerender.start()

    def _settings_settled(self) -> None:
        # a render still right for the new settings (only an export setting changed) runs on
        if self.job is not None and self.job.isRunning() and settings_key(self.job.options) != settings_key(self.render_options()):
            self.job.cancel()
            self.job.wait()
        self._next_job()

    # selection, display --------------------------------------------------------------------------
    def remove_recording(self, row: int | None = None) -> None:
        """Take a recording off the list (its files are untouched); a render of it stops."""
        row = self.queue.currentRow() if row is None else row
        if not 0 <= row < len(self.session.recordings):
            return
        rec = self.session.recordings[row]
        if self.job is not None and self.job.recording is rec and self.job.isRunning():
            self.job.cancel()  # its finished signal starts the next recording's render
        self.session.remove(rec)
        self.queue.blockSignals(True)  # the session already knows what is selected next
        self.queue.takeItem(row)
        self.queue.setCurrentRow(self.session.current)
        self.queue.blockSignals(False)
        self._show(self.session.selected)
        self.status.setText(f"Removed {rec.name} from the list." if self.session.recordings else "Open or drop recordings to start.")
        if not (self.job is not None and self.job.isRunning()):
            self._next_job()

    def remove_all(self) -> None:
        while self.session.recordings:
            self.remove_recording(len(self.session.recordings) - 1)

    def _refresh_queue(self) -> None:
        for i, rec in enumerate(self.session.recordings):
            item = self.queue.item(i)
            if item is not None and item.text() != rec.label():
                item.setText(rec.label())
                item.setToolTip(rec.tooltip())

    def select(self, row: int) -> None:
        self.session.current = row
        rec = self.session.selected
        self._show(rec)
        if rec is not None and self._needs_render(rec):
            self._next_job()

    def _show(self, rec: Recording | None) -> None:
        self.view.show_recording(rec)
        if rec is not None and rec.cleaned is not None and rec.noisy is not None:
            self.player.load(rec.noisy, rec.cleaned, rec.sample_rate, rec.loudness_noisy, rec.loudness_cleaned)
        else:  # nothing to hear (yet): not the recording shown before it
            self.player.unload()
            self.play_button.setText("Play  [Space]")

    def _tick(self) -> None:
        self.view.set_playhead(self.player.seconds)
        self.live.refresh()
        if not self.player.playing and self.play_button.text().startswith("Pause"):
            self.play_button.setText("Play  [Space]")

    # listening -----------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.player.playing:
            self.player.pause()
            self.play_button.setText("Play  [Space]")
            return
        if not self.player.sources:
            rec = self.session.selected
            failed = rec is not None and rec.status == Status.FAILED
            self.status.setText(f"Nothing to play: {rec.name} could not be read." if failed else "Nothing to play yet: the recording is still rendering.")
            return
        ok = self.player.play()
        self.play_button.setText("Pause  [Space]")
        if not ok:
            self.status.setText(f"Silent: {self.player.error}. The playhead still moves with seeking.")
            self.player.playing = False

    def toggle_ab(self) -> None:
        which = self.player.toggle_ab()
        text = "original (A)" if which == "A" else "cleaned (B)"
        self.ab_button.setText(f"Hearing: {text}  [Tab]")
        gain = getattr(self.player, "original_gain_db", 0.0)
        self.status.setText(f"Hearing the {text} at {self.player.seconds:.2f} s (original matched in loudness, {gain:+.1f} dB).")

    def seek(self, seconds: float) -> None:
        self.player.seek(seconds)

    def set_looping(self, on: bool) -> None:
        rec = self.session.selected
        region = self.view.loop_region
        if on and rec is not None and rec.seconds:
            start = self.player.seconds
            region.setRegion((start, min(rec.seconds, start + 2.0)))
        region.setVisible(on)
        self._loop_changed()

    def _loop_changed(self) -> None:
        self.player.set_loop(*(self.view.loop_bounds() or (None, None)))

    # export --------------------------------------------------------------------------------------
    def confirm_overwrite_source(self, path: Path) -> bool:
        answer = QMessageBox.question(self, "Replace the original?", f"{path.name} is the original recording.\nReplace it with the cleaned version?")
        return answer == QMessageBox.Yes

    def export_current(self, path: str | os.PathLike | None = None) -> None:
        rec = self.session.selected
        if rec is None:
            return
        if rec.status == Status.FAILED:  # the export would only repeat the read error, in a second dialog
            self.status.setText(f"Nothing to export: {rec.name} could not be read.")
            return
        if path is None:
            start = str(Path(self.settings.last_export_dir or rec.path.parent) / clean_name(rec.path))
            path, _ = QFileDialog.getSaveFileName(self, "Export cleaned recording", start, EXPORT_FILTER)
            if not path:
                return
        dst = Path(path)
        if not dst.suffix:  # a name typed without one: the format a default name would have had
            dst = dst.with_name(dst.name + output_suffix(rec.path))
        if dst.resolve() == rec.path.resolve():
            if not self.confirm_overwrite_source(dst):
                self.status.setText("Export cancelled: the original is kept.")
                return
            fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.export-", suffix=dst.suffix)
            os.close(fd)
            os.unlink(tmp)
            self._start_export([(rec.path, Path(tmp))], replace_source=(Path(tmp), dst))
            return
        self._start_export([(rec.path, dst)])

    def export_all(self, folder: str | os.PathLike | None = None) -> None:
        readable = [r.path for r in self.session.recordings if r.status != Status.FAILED]
        if not readable:
            if self.session.recordings:
                self.status.setText("Nothing to export: none of the recordings could be read.")
            return
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Export all to folder", self.settings.last_export_dir)
            if not folder:
                return
        folder = Path(folder)
        pairs = export_names(readable, folder)
        existing = [dst for _, dst in pairs if dst.exists()]
        if existing:
            answer = self.confirm_replace_existing(existing)
            if answer == "cancel":
                self.status.setText("Export cancelled: nothing was written.")
                return
            if answer == "skip":
                pairs = [(src, dst) for src, dst in pairs if not dst.exists()]
                if not pairs:
                    self.status.setText(f"Nothing to export: every file is already in {folder}.")
                    return
        self._start_export(pairs)

    def confirm_replace_existing(self, existing: list[Path]) -> str:
        """'replace', 'skip' (export only the files not there yet) or 'cancel'."""
        names = "\n".join(p.name for p in existing[:8]) + ("\n…" if len(existing) > 8 else "")
        box = QMessageBox(QMessageBox.Question, "Replace files?", f"{len(existing)} of the cleaned files already exist in {existing[0].parent}:\n{names}", parent=self)
        replace = box.addButton("Replace", QMessageBox.DestructiveRole)
        skip = box.addButton("Skip those", QMessageBox.AcceptRole)
        box.addButton(QMessageBox.Cancel)
        box.exec()
        return "replace" if box.clickedButton() is replace else "skip" if box.clickedButton() is skip else "cancel"

    def _start_export(self, pairs, replace_source=None) -> None:
        if self.export_job is not None and self.export_job.isRunning():
            self.show_error("An export is already running.")
            return
        self.settings.last_export_dir = str(pairs[0][1].parent)
        self.settings.save()
        job = self.export_job = ExportJob(pairs, self.render_options(), self)
        job.progress.connect(lambda v: self.progress.setValue(int(v * 1000)))
        job.failed.connect(self.show_error)

        def one_done(src: str, dst: str, notes: str) -> None:
            final = dst
            if replace_source is not None:
                with contextlib.suppress(OSError):  # the original's permissions, not the new file's
                    os.chmod(replace_source[0], output_mode(replace_source[1]))
                os.replace(replace_source[0], replace_source[1])
                final = str(replace_source[1])
            for rec in self.session.recordings:
                if str(rec.path) == src:
                    rec.status = Status.EXPORTED
            self._refresh_queue()
            written.append(final)
            self.status.setText(f"Exported {final}" + (f" ({notes})" if notes else ""))

        def all_done() -> None:
            self._update_cancel()
            if len(pairs) > 1 and not stopped:  # one line for the batch, not its last file
                self.status.setText(f"Exported {len(written)} of {len(pairs)} files to {pairs[0][1].parent}.")

        written: list[str] = []
        stopped: list[bool] = []
        job.finished_one.connect(one_done)
        job.cancelled.connect(lambda *_: stopped.append(True))
        job.cancelled.connect(self._export_cancelled)
        job.finished.connect(all_done)
        self.status.setText(f"Exporting {len(pairs)} file(s)…")
        job.start()
        self.cancel_button.setEnabled(True)

    # errors --------------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        log.error("%s", message)
        box = QMessageBox(QMessageBox.Critical, "NoiseNil", message, QMessageBox.Ok, self)
        box.setModal(True)
        box.open()
        self.error_boxes.append(box)
        self.status.setText(message)

    def closeEvent(self, event) -> None:
        self.player.stop()
        self.live.shutdown()
        for job in (self.job, self.export_job):
            if job is not None and job.isRunning():
                job.cancel()  # a render stops; an export removes its unfinished file
                job.wait(10000)
        self.settings.save()
        super().closeEvent(event)
