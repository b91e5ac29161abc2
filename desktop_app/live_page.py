"""The Live page: mic in, clean voice out, with meters, a scrolling spectrogram and recording.

The page owns a ``plugin_host.live.LiveEngine`` (which does all the audio work on its own
threads) and shows what the engine reports, pulled by the main window's one display timer
(``refresh``). Nothing here touches samples on the audio path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from plugin_host import DENOISERS, NoiseNilError
from plugin_host.live import SPEC_BINS, LiveConfig, LiveEngine, LiveStats, list_devices, rescan_devices

from .settings import BLOCK_CHOICES, RATE_CHOICES, Settings, is_streaming_model
from .views import LEVELS_DB, hbox, model_label

log = logging.getLogger("noisenil.gui")
HISTORY_FRAMES = 600  # columns of live spectrogram (6 s at 100 frames/s)


@dataclass
class LiveState:
    """What the page shows besides the engine's figures."""

    running: bool = False
    recording: list[str] = field(default_factory=list)
    error: str | None = None
    reported_error: str | None = None  # the failure already shown in a dialog


class LevelMeter(QProgressBar):
    """A horizontal dBFS bar (-60..0 dB) with its value as text."""

    def __init__(self, label: str, low_db: float = -60.0, high_db: float = 0.0, parent=None):
        super().__init__(parent)
        self.low, self.high, self.label = low_db, high_db, label
        self.setRange(0, 1000)
        self.setTextVisible(True)
        self.set_db(None)

    def set_db(self, db: float | None) -> None:
        if db is None:
            self.setValue(0)
            self.setFormat(f"{self.label}: -")
            return
        frac = (min(max(db, self.low), self.high) - self.low) / (self.high - self.low)
        self.setValue(int(1000 * frac))
        self.setFormat(f"{self.label}: {db:.1f} dB")


class LiveSpectrogram(pg.GraphicsLayoutWidget):
    """Before/after spectrograms scrolling right to left; newest on the right."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("#1e1f24")
        cmap = pg.colormap.get("inferno")
        self.history = {k: np.full((SPEC_BINS, HISTORY_FRAMES), LEVELS_DB[0], np.float32) for k in ("before", "after")}
        self.images = {}
        for row, (key, title) in enumerate((("before", "Mic (before)"), ("after", "Monitor (after)"))):
            plot = self.addPlot(row=row, col=0)
            plot.setTitle(title, color="#e0e0e0", size="10pt")
            plot.setLabel("left", "kHz")
            for side in ("left", "bottom"):  # kHz and seconds stay so, also before any audio
                plot.getAxis(side).enableAutoSIPrefix(False)
            plot.setMouseEnabled(x=False, y=False)
            img = pg.ImageItem()
            img.setColorMap(cmap)
            img.setLevels(LEVELS_DB)
            plot.addItem(img)
            self.images[key] = (plot, img)
        self.images["after"][0].setLabel("bottom", "seconds ago")
        self.sample_rate = 48000
        self.frame_seconds = 0.01
        self._draw()  # the empty history on its axes (6 s, 0-12 kHz) until a stream starts

    def configure(self, sample_rate: int, frame_seconds: float) -> None:
        self.sample_rate, self.frame_seconds = sample_rate, frame_seconds
        for hist in self.history.values():
            hist[:] = LEVELS_DB[0]
        self._draw()

    def add(self, before: np.ndarray, after: np.ndarray) -> None:
        """New frames (frames, bins) in dB."""
        for key, frames in (("before", before), ("after", after)):
            n = min(len(frames), HISTORY_FRAMES)
            if n:
                hist = self.history[key]
                hist[:, :-n] = hist[:, n:]
                hist[:, -n:] = frames[-n:].T
        if len(before) or len(after):
            self._draw()

    def _draw(self) -> None:
        nyq_khz = self.sample_rate / 2000
        span = HISTORY_FRAMES * self.frame_seconds
        for key, (plot, img) in self.images.items():
            img.setImage(self.history[key], autoLevels=False)
            img.setLevels(LEVELS_DB)
            img.setRect(QRectF(-span, 0, span, nyq_khz))
            plot.setYRange(0, min(nyq_khz, 12.0), padding=0)
            plot.setXRange(-span, 0, padding=0)


class LivePage(QWidget):
    """Device pickers, model and strength, start/stop, bypass, record; meters and readouts."""

    error = Signal(str)

    def __init__(self, settings: Settings, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.state = LiveState()
        self.engine: LiveEngine | None = None
        outer = QHBoxLayout(self)
        left = QVBoxLayout()
        outer.addLayout(left)
        devices = QGroupBox("Audio devices")
        form = QFormLayout(devices)
        self.input = QComboBox()
        self.output = QComboBox()
        self.rescan_button = QPushButton("Rescan")
        form.addRow("Microphone", self.input)
        form.addRow("Headphones", self.output)
        self.rate = QComboBox()
        for r in RATE_CHOICES:
            self.rate.addItem("device default" if r == 0 else f"{r} Hz", r)
        self.block = QComboBox()
        for b in BLOCK_CHOICES:
            self.block.addItem("10 ms" if b == 0 else f"{b} frames", b)
        form.addRow("Sample rate", self.rate)
        form.addRow("Block size", hbox(self.block, self.rescan_button))
        left.addWidget(devices)
        processing = QGroupBox("Denoiser")
        pform = QFormLayout(processing)
        self.model = QComboBox()
        for name in DENOISERS.names():
            if is_streaming_model(name):  # offline models look up to a second ahead: files only
                self.model.addItem(model_label(name), name)
        pform.addRow("Model", self.model)
        self.strength = QSlider(Qt.Horizontal)
        self.strength.setRange(0, 100)
        self.strength_label = QLabel()
        self.strength_label.setMinimumWidth(70)
        pform.addRow("Max. reduction", hbox(self.strength, self.strength_label))
        self.dehum = QCheckBox("Remove mains hum")
        self.dehum.setToolTip(
            "Listens to the mic for 50/60 Hz hum and notches out the lines it finds in front of the denoiser "
            "(the first look takes about 11 s)."
        )
        pform.addRow("Dehum", self.dehum)
        left.addWidget(processing)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start monitoring")
        self.start_button.setCheckable(True)
        self.bypass_button = QPushButton("Bypass")
        self.bypass_button.setCheckable(True)
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        for b in (self.start_button, self.bypass_button, self.record_button):
            buttons.addWidget(b)
        left.addLayout(buttons)
        self.folder_button = QPushButton()
        self.folder_button.setFlat(True)
        self.folder_button.setStyleSheet("text-align: left; color: #9aa0a6")
        left.addWidget(self.folder_button)
        meters = QGroupBox("Levels")
        mform = QVBoxLayout(meters)
        self.in_meter = LevelMeter("In")
        self.out_meter = LevelMeter("Out")
        self.reduction_meter = LevelMeter("Reduction", 0.0, 30.0)
        for m in (self.in_meter, self.out_meter, self.reduction_meter):
            mform.addWidget(m)
        left.addWidget(meters)
        self.noise_label = QLabel("Noise: -")
        self.hum_label = QLabel("Hum: -")
        self.latency_label = QLabel("Latency: -")
        self.xrun_label = QLabel("Dropouts: -")
        self.status_label = QLabel("Stopped.")
        self.status_label.setWordWrap(True)
        for w in (self.noise_label, self.hum_label, self.latency_label, self.xrun_label, self.status_label):
            left.addWidget(w)
        self.restart_button = QPushButton("Restart audio")
        self.restart_button.setVisible(False)
        left.addWidget(self.restart_button)
        left.addStretch(1)
        self.spectrogram = LiveSpectrogram()
        outer.addWidget(self.spectrogram, 1)

        self._fill_devices()
        self._apply_settings()
        self.start_button.toggled.connect(self._start_toggled)
        self.bypass_button.toggled.connect(self._bypass_toggled)
        self.record_button.toggled.connect(self._record_toggled)
        self.strength.valueChanged.connect(self._strength_changed)
        self.dehum.toggled.connect(self._dehum_toggled)
        self.model.currentIndexChanged.connect(self._model_changed)
        self.folder_button.clicked.connect(self._choose_folder)
        self.restart_button.clicked.connect(self.restart)
        self.rescan_button.clicked.connect(self.rescan)
        for combo in (self.input, self.output, self.rate, self.block):
            combo.currentIndexChanged.connect(self._devices_changed)

    # settings ----------------------------------------------------------------------------------
    def _apply_settings(self) -> None:
        s = self.settings
        for combo, value in ((self.input, s.live_input), (self.output, s.live_output)):
            idx = combo.findData(value) if value else -1
            combo.setCurrentIndex(idx if idx >= 0 else 0)
        self.rate.setCurrentIndex(max(0, self.rate.findData(s.live_sample_rate)))
        self.block.setCurrentIndex(max(0, self.block.findData(s.live_block_size)))
        self.model.setCurrentIndex(max(0, self.model.findData(s.live_model)))
        self.strength.setValue(int(round(s.live_attenuation_limit_db)))
        self.dehum.setChecked(s.live_dehum)
        self._labels()

    def _labels(self) -> None:
        v = self.strength.value()
        self.strength_label.setText("no limit" if v >= 100 else f"{v} dB")
        self.folder_button.setText(f"Records to: {self.record_folder()}  (change…)")

    def record_folder(self) -> Path:
        return Path(self.settings.live_record_dir or Path.home() / "NoiseNil recordings")

    def _fill_devices(self) -> None:
        for combo in (self.input, self.output):
            combo.blockSignals(True)
            combo.clear()
        try:
            for kind, combo in (("input", self.input), ("output", self.output)):
                for d in list_devices(kind):
                    combo.addItem(f"{d.name}  [{d.hostapi}]", d.name)
            if not self.input.count():
                self.status_label.setText("No microphone found. Plug one in (or start the audio server), then Rescan.")
        except NoiseNilError as exc:
            self.status_label.setText(str(exc))
        for combo in (self.input, self.output):
            combo.blockSignals(False)

    def _devices_changed(self, *_) -> None:
        s = self.settings
        s.live_input = self.input.currentData() or ""
        s.live_output = self.output.currentData() or ""
        s.live_sample_rate = int(self.rate.currentData() or 0)
        s.live_block_size = int(self.block.currentData() or 0)
        if self.state.running:
            self.restart()  # a new device or rate needs a new stream

    def _model_changed(self, *_) -> None:
        self.settings.live_model = self.model.currentData()
        if self.state.running:
            self.restart()

    def _dehum_toggled(self, on: bool) -> None:
        self.settings.live_dehum = on
        if self.engine is not None:
            self.engine.dehum = on  # at the next block

    def _strength_changed(self, value: int) -> None:
        self.settings.live_attenuation_limit_db = float(value)
        self._labels()
        if self.engine is not None:
            self.engine.attenuation_limit_db = float(value)  # click-free, at the next frame

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Record into", str(self.record_folder()))
        if folder:
            self.settings.live_record_dir = folder
            self._labels()

    # running ------------------------------------------------------------------------------------
    def config(self) -> LiveConfig:
        s = self.settings
        return LiveConfig(
            input_device=s.live_input or None,
            output_device=s.live_output or None,
            sample_rate=s.live_sample_rate or None,
            block_size=s.live_block_size or None,
            model=s.live_model or None,
            attenuation_limit_db=s.live_attenuation_limit_db,
            safety_ms=s.live_safety_ms,
            dehum=s.live_dehum,
        )

    def start(self) -> bool:
        if self.state.running:
            return True
        try:
            engine = LiveEngine(self.config())
            engine.bypass = self.bypass_button.isChecked()
            engine.start()
        except NoiseNilError as exc:
            self._report(f"Cannot start monitoring: {exc}")
            self.start_button.blockSignals(True)
            self.start_button.setChecked(False)
            self.start_button.blockSignals(False)
            return False
        self.engine = engine
        self.state = LiveState(running=True)
        self.spectrogram.configure(engine.sample_rate, engine.spec_hop / engine.sample_rate)
        self.latency_label.setText(f"Latency: {engine.latency}")
        self.status_label.setText(f"Monitoring {engine.input.name} → {engine.output.name} at {engine.sample_rate} Hz.")
        self.restart_button.setVisible(False)
        self.start_button.setText("Stop monitoring")
        self.start_button.blockSignals(True)
        self.start_button.setChecked(True)
        self.start_button.blockSignals(False)
        if self.record_button.isChecked():
            self._start_recording()
        log.info("live: started %s -> %s at %d Hz, latency %s", engine.input.name, engine.output.name, engine.sample_rate, engine.latency)
        return True

    def stop(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
            st = engine.stats(reset_peaks=False)
            log.info("live: stopped after %.1f s, %d xruns, %d clipped", st.seconds, st.xruns, st.clipped_input)
        self.state.running = False
        self.start_button.setText("Start monitoring")
        self.start_button.blockSignals(True)
        self.start_button.setChecked(False)
        self.start_button.blockSignals(False)
        if self.state.recording:
            self.status_label.setText("Stopped. Recorded: " + ", ".join(Path(p).name for p in self.state.recording))
        elif not self.state.error:
            self.status_label.setText("Stopped.")
        for m in (self.in_meter, self.out_meter, self.reduction_meter):
            m.set_db(None)

    def restart(self) -> None:
        recording = self.record_button.isChecked()
        self.stop()
        self.state.error = None
        try:
            rescan_devices()
        except NoiseNilError as exc:
            self._report(str(exc))
            return
        self._fill_devices()
        self._apply_settings()
        self.record_button.setChecked(recording)
        self.start()

    def rescan(self) -> None:
        if self.state.running:
            self.restart()
            return
        try:
            rescan_devices()
        except NoiseNilError as exc:
            self._report(str(exc))
        self._fill_devices()
        self._apply_settings()

    def _start_toggled(self, on: bool) -> None:
        self.start() if on else self.stop()

    def _bypass_toggled(self, on: bool) -> None:
        if self.engine is not None:
            self.engine.bypass = on  # the engine crossfades over 20 ms

    def toggle_bypass(self) -> None:
        self.bypass_button.toggle()

    def _record_toggled(self, on: bool) -> None:
        if self.engine is None:
            return  # recording starts with the stream
        if on:
            self._start_recording()
        else:
            self.engine.stop_recording()
            self.status_label.setText("Recorded: " + ", ".join(Path(p).name for p in self.state.recording))

    def _start_recording(self) -> None:
        try:
            paths = self.engine.start_recording(self.record_folder())
        except NoiseNilError as exc:
            self._report(str(exc))
            self.record_button.setChecked(False)
            return
        self.state.recording = [str(p) for p in paths]
        self.status_label.setText("Recording to " + ", ".join(Path(p).name for p in paths))

    def _report(self, message: str) -> None:
        log.error("live: %s", message)
        self.state.error = message
        self.status_label.setText(message)
        self.error.emit(message)

    # the display timer --------------------------------------------------------------------------
    def refresh(self) -> LiveStats | None:
        """Pull the engine's figures and new spectrogram frames (called by the main window's timer)."""
        engine = self.engine
        if engine is None:
            return None
        st = engine.stats()
        if st.state == "failed":
            if self.state.reported_error != st.error:  # once per failure; the engine is closed on Restart/Stop
                self.state.reported_error = st.error
                self._report(f"{st.error}. Check the device, then press Restart audio.")
                self.restart_button.setVisible(True)
                for m in (self.in_meter, self.out_meter, self.reduction_meter):
                    m.set_db(None)
            return st
        self.in_meter.set_db(st.in_peak_db)
        self.out_meter.set_db(st.out_peak_db)
        self.reduction_meter.set_db(st.gain_reduction_db)
        self.noise_label.setText(
            f"Noise: {st.noise_class.replace('_', ' ')} ({st.noise_probability:.0%})" if st.noise_class else "Noise: listening…"
        )
        if st.hum:
            self.hum_label.setText(f"Hum: {st.hum.removeprefix('mains hum at ')}" + (", notched" if engine.dehum else " (Dehum notches it)"))
        else:
            self.hum_label.setText("Hum: none found" if st.hum_checked else "Hum: listening…")
        clip = f", {st.clipped_input} clipped input samples" if st.clipped_input else ""
        self.xrun_label.setText(
            f"Dropouts: {st.xruns} (device {st.device_xruns}, engine late {st.late_blocks}){clip}"
        )
        self.xrun_label.setStyleSheet("color: #ff6b6b" if st.xruns or st.clipped_input else "")
        before, after = engine.read_spectrogram()
        self.spectrogram.add(before, after)
        return st

    def shutdown(self) -> None:
        self.stop()
