"""The Live page in the real main window (offscreen), on the JACK dummy server: pickers, start,
meters, spectrogram, noise readout, bypass, recording, errors and restart."""

import os
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6", reason="GUI tests need the gui extra")
from PySide6.QtCore import Qt  # noqa: E402

from desktop_app.main_window import MainWindow  # noqa: E402
from desktop_app.settings import Settings  # noqa: E402

RATE = 48000


@pytest.fixture
def live_window(qtbot, jack, tmp_path, monkeypatch):
    monkeypatch.setenv("NOISENIL_CONFIG_DIR", str(tmp_path / "config"))
    settings = Settings(live_input="system", live_output="system", live_record_dir=str(tmp_path / "takes"))
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    w.tabs.setCurrentWidget(w.live)
    yield w
    w.close()


def play_noise(jack, tmp_path, seconds=6.0, level=0.03):
    path = tmp_path / "hiss.wav"
    x = (level * np.random.default_rng(0).standard_normal(int(seconds * RATE))).astype(np.float32)
    sf.write(path, x, RATE, subtype="FLOAT")
    player = subprocess.Popen(["jack-play", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = jack.wait_port(rf"jack-play-{player.pid}:out_1")
    jack.connect(out, jack.wait_port(r"PortAudio[^:]*:in_\d+"))
    return player


def test_live_page_monitors_records_and_reports(qtbot, live_window, jack, tmp_path):
    page = live_window.live
    assert page.input.currentData() == "system" and page.output.currentData() == "system"
    page.dehum.setChecked(True)
    assert live_window.settings.live_dehum is True
    qtbot.mouseClick(page.start_button, Qt.LeftButton)
    assert page.engine is not None and page.engine.state == "running", page.status_label.text()
    assert page.engine.dehum is True
    page.dehum.setChecked(False)  # reaches the running engine (at its next block)
    assert page.engine.dehum is False and live_window.settings.live_dehum is False
    assert "ms" in page.latency_label.text() and "model" in page.latency_label.text()
    qtbot.mouseClick(page.record_button, Qt.LeftButton)
    assert len(page.state.recording) == 2
    player = play_noise(jack, tmp_path)
    try:
        # meters, reduction, noise readout and the spectrogram all move with the hiss (-30 dBFS)
        qtbot.waitUntil(lambda: page.in_meter.value() > 300, timeout=5000)
        qtbot.waitUntil(lambda: "listening" not in page.noise_label.text() and page.noise_label.text() != "Noise: -", timeout=8000)
        qtbot.waitUntil(lambda: page.engine.stats(reset_peaks=False).gain_reduction_db > 6.0, timeout=5000)
        assert page.in_meter.format().startswith("In: -")
        hist = page.spectrogram.history
        assert hist["before"][:, -50:].mean() > hist["after"][:, -50:].mean() + 6.0  # the hiss, and less of it
        qtbot.mouseClick(page.bypass_button, Qt.LeftButton)
        assert page.engine.bypass
        qtbot.waitUntil(lambda: page.engine.stats(reset_peaks=False).gain_reduction_db < 1.0, timeout=5000)
        assert "Dropouts:" in page.xrun_label.text()
        assert page.hum_label.text() == "Hum: listening…"  # 6 s of hiss: no segment (~11 s) looked at yet
    finally:
        player.wait(timeout=30)
    qtbot.mouseClick(page.start_button, Qt.LeftButton)  # stop
    assert page.engine is None and not page.state.running
    for path in page.state.recording:
        info = sf.info(path)
        assert info.samplerate == RATE and info.duration > 2.0
    raw = sf.read(page.state.recording[0])[0]
    seconds = raw[: len(raw) // RATE * RATE].reshape(-1, RATE)
    loudest_db = 10 * np.log10(np.mean(seconds**2, axis=1).max())
    assert loudest_db == pytest.approx(-30.5, abs=1.0)  # the hiss that was played, at its level
    assert live_window.settings.live_input == "system"


def test_live_page_errors_and_restart(qtbot, live_window, jack):
    page = live_window.live
    page.rate.setCurrentIndex(page.rate.findData(44100))
    qtbot.mouseClick(page.start_button, Qt.LeftButton)
    assert page.engine is None and not page.start_button.isChecked()
    assert live_window.error_boxes and "44100" in live_window.error_boxes[-1].text() and "48000" in live_window.error_boxes[-1].text()
    page.rate.setCurrentIndex(page.rate.findData(0))
    qtbot.mouseClick(page.start_button, Qt.LeftButton)
    assert page.engine.state == "running"
    jack.pause()  # the device stops delivering
    try:
        qtbot.waitUntil(lambda: page.restart_button.isVisible(), timeout=6000)
    finally:
        jack.resume()
    assert "no audio from 'system'" in page.status_label.text() and "Restart" in page.status_label.text()
    assert "no audio" in live_window.error_boxes[-1].text()
    qtbot.mouseClick(page.restart_button, Qt.LeftButton)
    assert page.engine is not None and page.engine.state == "running" and not page.restart_button.isVisible()
    time.sleep(0.5)
    qtbot.waitUntil(lambda: page.engine.stats(reset_peaks=False).seconds > 0.3, timeout=5000)


def test_live_spectrogram_has_its_axes_before_any_audio(qtbot):
    """Before a stream starts (or when no device could be opened) the plots show their 6 s and
    0-12 kHz, not pyqtgraph's auto-scaled empty range ("kHz (x0.001)")."""
    from desktop_app.live_page import LiveSpectrogram

    view = LiveSpectrogram()
    qtbot.addWidget(view)
    for plot, _ in view.images.values():
        (x0, x1), (y0, y1) = plot.viewRange()
        assert (x0, x1, y0, y1) == pytest.approx((-6.0, 0.0, 0.0, 12.0))
        assert not plot.getAxis("left").autoSIPrefix and not plot.getAxis("bottom").autoSIPrefix


def test_playback_of_a_cleaned_recording_reaches_the_device(qtbot, jack, tmp_path, monkeypatch):
    """Play (B) and the loudness-matched original (A) through a real PortAudio stream on JACK,
    recorded off the app's output ports: what comes out is the recording, sample for sample."""
    from conftest import EXAMPLES, read_audio, write_audio

    monkeypatch.setenv("NOISENIL_CONFIG_DIR", str(tmp_path / "config"))
    x, rate = read_audio(EXAMPLES / "noisy_podcast.flac")
    src = write_audio(tmp_path / "episode.wav", x[:, : 4 * rate], rate)
    w = MainWindow(Settings())
    qtbot.addWidget(w)
    w.open_files([src])
    qtbot.waitUntil(lambda: w.session.all_done() and bool(w.player.sources), timeout=60000)
    rec = w.session.selected
    heard = {}
    for which in ("B", "A"):
        if w.player.which != which:
            w.toggle_ab()
        w.seek(0.0)
        w.toggle_play()
        assert w.player.playing, w.status.text()
        port = jack.wait_port(r"PortAudio[^:]*:out_\d+")
        take = tmp_path / f"heard_{which}.wav"
        recorder = subprocess.Popen(["jack-record", "-n", "1", "-t", "2", "-p", port, str(take)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorder.wait(timeout=30)
        w.toggle_play()  # pause
        heard[which] = sf.read(take, dtype="float32")[0]
    w.close()
    for which, source in (("B", rec.cleaned[0]), ("A", rec.noisy[0] * w.player.gains["A"])):
        y = heard[which]
        loudest = max(range(0, len(y) - rate // 2, rate // 10), key=lambda i: np.sum(y[i : i + rate // 2] ** 2))
        y = y[loudest : loudest + rate // 2]  # the loudest half second (the example opens on a pause)
        assert np.sqrt(np.mean(y**2)) > 1e-2  # speech, not silence
        from scipy.signal import fftconvolve

        # where in the recording the capture starts: the best normalised correlation
        corr = fftconvolve(source, y[::-1], mode="valid")
        energy = np.sqrt(np.maximum(fftconvolve(source**2, np.ones(len(y)), mode="valid"), 1e-12))
        start = int(np.argmax(corr / energy))
        np.testing.assert_allclose(y, source[start : start + len(y)], atol=1e-4)
