"""Widgets. Each shows state it is given and reports what the user does; none does DSP."""

from __future__ import annotations

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QWidget,
)

from plugin_host import DENOISERS, NoiseNilError, preset_names

from .session import Recording
from .settings import BITRATE_CHOICES_KBPS, LOUDNESS_CHOICES_LUFS, Settings

LEVELS_DB = (-100.0, -20.0)  # one colour scale for before and after
EMPTY_KHZ, EMPTY_SECONDS = 24.0, 10.0  # the axes when there is nothing to show
pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")


WAVE_TITLE = "Waveform: original (grey), cleaned (teal)"


class SpectrogramView(pg.GraphicsLayoutWidget):
    """Waveform overview plus before/after spectrograms; time axes linked, one colour scale."""

    seek_requested = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("#1e1f24")
        self.overview = self.addPlot(row=0, col=0)
        self.overview.setMaximumHeight(90)
        self.overview.hideAxis("left")
        self.overview.setMouseEnabled(x=False, y=False)
        self.overview.setTitle(WAVE_TITLE, color="#c8c8c8", size="9pt")
        self.wave_noisy = self.overview.plot(pen=pg.mkPen("#7a7a7a"))
        self.wave_clean = self.overview.plot(pen=pg.mkPen("#2ec4b6"))
        # where the original clipped: a red mark over the waveform at each flat top
        self.clip_marks = self.overview.plot(pen=None, symbol="t", symbolSize=7, symbolPen=None, symbolBrush=pg.mkBrush("#ff4d4d"))
        self.before = self.addPlot(row=1, col=0)
        self.after = self.addPlot(row=2, col=0)
        cmap = pg.colormap.get("inferno")
        self.images = {}
        for plot, title in ((self.before, "Before (original)"), (self.after, "After (cleaned)")):
            plot.setTitle(title, color="#e0e0e0", size="10pt")
            plot.setLabel("left", "kHz")
            plot.getAxis("left").enableAutoSIPrefix(False)  # kHz stays kHz, also on an empty plot
            plot.setMouseEnabled(x=True, y=False)
            img = pg.ImageItem()
            img.setColorMap(cmap)
            img.setLevels(LEVELS_DB)
            plot.addItem(img)
            self.images[plot] = img
        self.after.setLabel("bottom", "time (s)")
        self.after.setXLink(self.before)
        self.overview.setXLink(self.before)
        self.playheads = [pg.InfiniteLine(angle=90, pen=pg.mkPen("#7df9ff", width=1.5)) for _ in range(3)]
        for plot, line in zip((self.overview, self.before, self.after), self.playheads):
            plot.addItem(line)
        self.loop_region = pg.LinearRegionItem(brush=pg.mkBrush(125, 249, 255, 40))
        self.loop_region.setVisible(False)
        self.before.addItem(self.loop_region)
        self.colorbar = pg.ColorBarItem(values=LEVELS_DB, colorMap=cmap, label="dB", interactive=False)
        self.colorbar.setImageItem([self.images[self.before], self.images[self.after]])
        self.addItem(self.colorbar, row=1, col=1, rowspan=2)  # its own column: both plots keep the same width
        self._duration = 0.0
        self._envelopes: dict = {}  # curve -> (weak reference to the audio, t, envelope)
        self.before.scene().sigMouseClicked.connect(self._clicked)

    def _clicked(self, event) -> None:
        for plot in (self.before, self.after, self.overview):
            if plot.sceneBoundingRect().contains(event.scenePos()):
                self.seek_requested.emit(float(plot.vb.mapSceneToView(event.scenePos()).x()))
                return

    def show_recording(self, rec: Recording | None) -> None:
        for img in self.images.values():
            img.clear()
        self.wave_noisy.clear()
        self.wave_clean.clear()
        self.clip_marks.clear()
        clipped = rec is not None and bool(rec.clip_seconds)
        self.overview.setTitle(WAVE_TITLE + (", clipped (red marks)" if clipped else ""), color="#c8c8c8", size="9pt")
        if clipped:
            self.clip_marks.setData(np.asarray(rec.clip_seconds), np.ones(len(rec.clip_seconds)))
        if rec is None or rec.spec_noisy is None:  # nothing (yet), or a file that could not be read
            for plot in (self.before, self.after):
                plot.setYRange(0, EMPTY_KHZ, padding=0)
            self.before.setXRange(0, EMPTY_SECONDS, padding=0)
            self._duration = EMPTY_SECONDS
            return
        nyq_khz = rec.sample_rate / 2000
        for plot, spec in ((self.before, rec.spec_noisy), (self.after, rec.spec_cleaned)):
            if spec is not None and len(spec):
                img = self.images[plot]
                img.setImage(spec.T, autoLevels=False)
                img.setLevels(LEVELS_DB)
                img.setRect(QRectF(0, 0, len(spec) * rec.spec_seconds_per_column, nyq_khz))
                plot.setYRange(0, nyq_khz, padding=0)
        duration = max(rec.seconds, len(rec.spec_noisy) * rec.spec_seconds_per_column)
        if abs(duration - self._duration) > 1e-6:
            self.before.setXRange(0, duration, padding=0)
            self._duration = duration
        for arr, curve in ((rec.noisy, self.wave_noisy), (rec.cleaned, self.wave_clean)):
            if arr is not None:
                cached = self._envelopes.get(curve)
                if cached is None or cached[0]() is not arr:  # redrawn 4 times a second while rendering
                    self._envelopes[curve] = (weakref.ref(arr), *envelope(arr, rec.sample_rate))
                curve.setData(*self._envelopes[curve][1:])

    def set_playhead(self, seconds: float) -> None:
        for line in self.playheads:
            line.setValue(seconds)

    def loop_bounds(self) -> tuple[float, float] | None:
        return tuple(self.loop_region.getRegion()) if self.loop_region.isVisible() else None


def envelope(x: np.ndarray, rate: int, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Peak envelope of a (channels, samples) signal, as a min/max zig-zag for drawing."""
    length = x.shape[1]
    step = max(1, length // points)
    n = length // step * step
    if n:  # reductions over views: no copy of the recording (an hour of stereo is 1.4 GB)
        blocks = x[:, :n].reshape(x.shape[0], -1, step)
        peaks = np.maximum(blocks.max(axis=(0, 2)), -blocks.min(axis=(0, 2)))
    else:
        peaks = np.abs(x).max(axis=0)
    t = np.arange(len(peaks)) * step / rate
    return np.repeat(t, 2), np.stack([peaks, -peaks], axis=1).reshape(-1)


def hbox(*widgets) -> QWidget:
    """Widgets side by side, as one form field."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        row.addWidget(w)
    return holder


class ControlsPanel(QGroupBox):
    """Model, strength, preset, loudness. Emits ``changed`` with the new settings."""

    changed = Signal()

    def __init__(self, settings: Settings, parent=None):
        super().__init__("Settings", parent)
        self.settings = settings
        form = QFormLayout(self)
        self.model = QComboBox()
        self.model.addItem("Automatic (the noise classifier picks)", "auto")
        for name in DENOISERS.names():
            self.model.addItem(model_label(name), name)
        form.addRow("Model", self.model)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setStyleSheet("color: #9aa0a6; font-size: 9pt")
        form.addRow("", self.model_info)
        self.strength = QSlider(Qt.Horizontal)
        self.strength.setRange(0, 100)
        self.strength_label = QLabel()
        self.strength_label.setMinimumWidth(70)
        form.addRow("Max. reduction", hbox(self.strength, self.strength_label))
        self.preset = QComboBox()
        self.preset.addItem("None (model only)", "")
        for name in preset_names():
            self.preset.addItem(name.replace("_", " "), name)
        form.addRow("Preset", self.preset)
        self.loudness_on = QCheckBox("Normalise to")
        self.loudness = QDoubleSpinBox()
        self.loudness.setRange(*LOUDNESS_CHOICES_LUFS)
        self.loudness.setSuffix(" LUFS")
        self.loudness.setDecimals(1)
        form.addRow("Loudness", hbox(self.loudness_on, self.loudness))
        self.bitrate = QComboBox()  # exports only: changing it renders nothing again
        for kbps in BITRATE_CHOICES_KBPS:
            self.bitrate.addItem(f"{kbps} kbps" if kbps else "As the input", kbps)
        self.bitrate.setToolTip(
            "The bit rate of an MP3, M4A (AAC), Opus or Ogg export. 'As the input' keeps a lossy recording's own rate; "
            "a WAV or FLAC recording exported as MP3 gets 320 kbps, as M4A or Opus 64 or 48 kbps per channel. Lossless exports are not affected."
        )
        form.addRow("Lossy bit rate", self.bitrate)
        self.declip = QCheckBox("Fill in clipped peaks")
        self.declip.setToolTip(
            "Declip: flat tops up to 5 ms long are filled in from the samples around them, before denoising: at full scale, "
            "or at the level a take clipped at before it was turned down. "
            "An export without a loudness target is turned down just enough to hold the restored peaks."
        )
        form.addRow("Declip", self.declip)
        self.dehum = QCheckBox("Remove mains hum")
        self.dehum.setToolTip(
            "Dehum: the 50 or 60 Hz hum of a ground loop, and its harmonics that stand out, found in the recording and "
            "notched out with narrow filters before denoising (a denoiser lets hum under a voice through). Nothing is notched where no hum is found."
        )
        form.addRow("Dehum", self.dehum)
        self.level = QCheckBox("Even out voice levels")
        self.level.setToolTip(
            "Leveler: a quiet guest turned up and a loud host down (at most 15 dB either way), from the speech's level over a few seconds; "
            "long pauses keep their gain. An export without a loudness target is turned down just enough to hold the raised peaks."
        )
        form.addRow("Level", self.level)
        self.apply(settings)
        self.model.currentIndexChanged.connect(self._changed)
        self.strength.valueChanged.connect(self._changed)
        self.preset.currentIndexChanged.connect(self._changed)
        self.loudness_on.toggled.connect(self._changed)
        self.loudness.valueChanged.connect(self._changed)
        self.bitrate.currentIndexChanged.connect(self._changed)
        self.declip.toggled.connect(self._changed)
        self.dehum.toggled.connect(self._changed)
        self.level.toggled.connect(self._changed)

    def apply(self, s: Settings) -> None:
        idx = self.model.findData(s.model)
        self.model.setCurrentIndex(max(0, idx))
        self.strength.setValue(int(round(s.attenuation_limit_db)))
        self.preset.setCurrentIndex(max(0, self.preset.findData(s.preset)))
        self.loudness_on.setChecked(s.loudness_enabled)
        self.loudness.setValue(s.loudness_lufs)
        self.bitrate.setCurrentIndex(max(0, self.bitrate.findData(s.bitrate_kbps)))
        self.declip.setChecked(s.declip)
        self.dehum.setChecked(s.dehum)
        self.level.setChecked(s.level)
        self._refresh_labels()

    def _refresh_labels(self) -> None:
        v = self.strength.value()
        self.strength_label.setText("no limit" if v >= 100 else f"{v} dB")
        self.model_info.setText(model_details(self.model.currentData()))
        self.loudness.setEnabled(self.loudness_on.isChecked())

    def _changed(self, *_):
        s = self.settings
        s.model = self.model.currentData()
        s.attenuation_limit_db = float(self.strength.value())
        s.preset = self.preset.currentData()
        s.loudness_enabled = self.loudness_on.isChecked()
        s.loudness_lufs = float(self.loudness.value())
        s.bitrate_kbps = int(self.bitrate.currentData())
        s.declip = self.declip.isChecked()
        s.dehum = self.dehum.isChecked()
        s.level = self.level.isChecked()
        self._refresh_labels()
        self.changed.emit()


def model_label(name: str) -> str:
    try:
        m = DENOISERS.get(name)
    except NoiseNilError:
        return f"{name} (broken)"
    return f"{m.display_name or name}  ·  {m.latency_ms:.0f} ms" + ("" if m.streaming else " (offline)")


def model_details(name: str | None) -> str:
    if not name:
        return ""
    if name == "auto":
        return "Each recording is classified first; the model and its strength follow the noise found (plugin_host/auto_policy.json)."
    try:
        m = DENOISERS.get(name)
    except NoiseNilError as exc:
        return str(exc)
    met = m.metrics
    quality = (
        f"dev set: SI-SDR {met['si_sdr_improvement_db']:+.1f} dB, noise in pauses -{met['pause_noise_reduction_db']:.0f} dB, "
        f"{1 / max(met['real_time_factor'], 1e-6):.0f}x real time"
        if "si_sdr_improvement_db" in met
        else "not measured yet (noisenil eval)"
    )
    mode = "" if m.streaming else " (offline: looks ahead, files only, not live)"
    return f"{m.sample_rate / 1000:g} kHz, latency {m.latency_ms:.0f} ms{mode}; {quality}. {m.licence}"
