"""The real main window, offscreen, driven as a user would (pytest-qt)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, read_audio, write_audio

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6", reason="GUI tests need the gui extra")
from PySide6.QtCore import Qt  # noqa: E402

from desktop_app.main_window import MainWindow  # noqa: E402
from desktop_app.session import Status  # noqa: E402
from desktop_app.settings import Settings  # noqa: E402

RATE = 48000


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """Each test gets its own settings and log folder."""
    monkeypatch.setenv("NOISENIL_CONFIG_DIR", str(tmp_path / "config"))
    yield tmp_path / "config"


@pytest.fixture
def short_example(tmp_path):
    x, rate = read_audio(EXAMPLES / "noisy_podcast.flac")
    return write_audio(tmp_path / "episode.wav", x[:, : 5 * rate], rate)


@pytest.fixture
def window(qtbot):
    w = MainWindow(Settings())
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def wait_rendered(qtbot, window, timeout=60000):
    # render_settled, not job.isRunning(): a thread stops running before its queued `finished` reaches _next_job,
    # and the cancel button is only disabled there (CI once asserted in that gap)
    qtbot.waitUntil(
        lambda: window.session.all_done() and window.render_settled and bool(window.player.sources or window.error_boxes),
        timeout=timeout,
    )


def test_open_render_and_spectrograms(qtbot, window, short_example):
    assert not window.cancel_button.isEnabled()  # nothing to cancel yet
    window.open_files([short_example])
    assert window.cancel_button.isEnabled()  # rendering
    wait_rendered(qtbot, window)
    assert not window.cancel_button.isEnabled()
    rec = window.session.selected
    assert rec.status == Status.DONE and rec.cleaned.shape == rec.noisy.shape == (1, 5 * RATE)
    assert rec.spec_noisy.shape == rec.spec_cleaned.shape and rec.spec_noisy.shape[1] == 513
    img_before = window.view.images[window.view.before].image
    img_after = window.view.images[window.view.after].image
    assert img_before is not None and img_after is not None and img_before.shape == img_after.shape
    # cleaned is quieter in the room tone before the voice (first 0.6 s)
    n = int(0.6 * RATE)
    assert 10 * np.log10(np.sum(rec.noisy[0, :n] ** 2) / np.sum(rec.cleaned[0, :n] ** 2)) > 8.0
    assert "[done]" in window.queue.item(0).text()


def test_a_clipped_recording_says_so_in_the_queue(qtbot, window, short_example, tmp_path):
    """The queue names a take that clipped (its tooltip says where); a clean take says nothing."""
    from plugin_host.clipping import ClipCounter

    x, rate = read_audio(short_example)
    hot = write_audio(tmp_path / "guest.wav", np.clip(8.0 * x, -1.0, 1.0), rate, bit_depth=16)
    counted = ClipCounter(rate)
    counted.add(read_audio(hot)[0])
    expected = counted.finish().describe()
    assert expected is not None
    window.open_files([short_example, hot])
    wait_rendered(qtbot, window)
    calm, clipped = window.queue.item(0), window.queue.item(1)
    assert "clipped" not in calm.text() and calm.toolTip().split("\n")[0] == str(short_example) and "cannot bring back" not in calm.toolTip()
    assert "  · " + expected.split(" (")[0] in clipped.text()  # (the example's hum is named after it)
    assert clipped.toolTip().startswith(f"{hot}\nC{expected[1:]}: a denoiser cannot bring back what was cut off")
    # the waveform marks each flat top of the shown recording, and says what the marks are
    assert window.view.clip_marks.getData()[0] is None and "clipped" not in window.view.overview.titleLabel.text
    window.queue.setCurrentRow(1)
    xs, ys = window.view.clip_marks.getData()
    assert len(xs) == counted.count and xs[0] == pytest.approx(counted.first_seconds) and set(ys) == {1.0}
    assert "clipped (red marks)" in window.view.overview.titleLabel.text


@pytest.mark.parametrize("turned_down_db", [0.0, -3.0])  # -3: a take clipped and then normalised in an editor
def test_declip_fills_in_a_clipped_take_and_its_export_fits_under_full_scale(qtbot, window, short_example, tmp_path, turned_down_db):
    x, rate = read_audio(short_example)
    gain = 10 ** (turned_down_db / 20)
    hot = write_audio(tmp_path / "guest.wav", gain * np.clip(1.6 * x / np.max(np.abs(x)), -1.0, 1.0), rate, bit_depth=16)
    window.open_files([hot])
    wait_rendered(qtbot, window)
    assert np.max(np.abs(window.session.selected.cleaned)) <= gain  # the flat tops stay flat without it
    assert window.session.selected.clipped.startswith("clipped in ") and ("dBFS" in window.session.selected.clipped) == (turned_down_db < 0)
    window.controls.declip.setChecked(True)
    window._rerender.timeout.emit()  # as the settle timer would
    qtbot.waitUntil(lambda: window.session.selected.settings_key[-2] is True, timeout=60000)
    wait_rendered(qtbot, window)
    assert Settings.load().declip is True
    assert np.max(np.abs(window.session.selected.cleaned)) > 1.05 * gain  # the peaks are back, over the clip level
    out = tmp_path / "fixed.wav"
    window.export_current(out)
    qtbot.waitUntil(lambda: window.session.selected.status == Status.EXPORTED, timeout=60000)
    at = f" at {turned_down_db:.1f} dBFS" if turned_down_db < 0 else ""
    assert f"declipped{at}: " in window.status.text()
    assert ("turned down " in window.status.text()) == (turned_down_db == 0.0)  # 3 dB under full scale, the restored peaks fit
    y, _ = read_audio(out)
    assert (0.99 if turned_down_db == 0.0 else 1.05 * gain) < np.max(np.abs(y)) <= 1.0


def test_dehum_notches_the_example_hum_in_the_preview_and_the_export(qtbot, window, short_example, tmp_path):
    """The example's 50 Hz mains hum: the Dehum box finds it in the loaded recording, notches it, and the export says so."""
    from plugin_host.dehum import find_hum

    window.open_files([short_example])
    wait_rendered(qtbot, window)
    plain = window.session.selected.cleaned.copy()
    found = find_hum([window.session.selected.noisy], RATE)
    item = window.queue.item(0)
    assert item.text().endswith("  · hum at 50.0 Hz") and item.toolTip().endswith(f"\n{found.describe().replace('mains', 'Mains')}: Remove mains hum notches it")
    window.controls.dehum.setChecked(True)
    window._rerender.timeout.emit()
    qtbot.waitUntil(lambda: window.session.selected.settings_key[-3] is True, timeout=60000)
    wait_rendered(qtbot, window)
    assert Settings.load().dehum is True
    cleaned = window.session.selected.cleaned
    hum_at = lambda y: np.abs(np.fft.rfft(y[0, RATE:] * np.hanning(y.shape[1] - RATE)))[[int(50 * k * (y.shape[1] - RATE) / RATE) for k in (1, 2, 3)]]
    assert np.all(hum_at(cleaned) < 0.3 * hum_at(plain))  # the lines under the voice, 10 dB further down than the denoiser alone left them
    out = tmp_path / "dehummed.wav"
    window.export_current(out)
    qtbot.waitUntil(lambda: window.session.selected.status == Status.EXPORTED, timeout=60000)
    assert "dehummed: mains hum at 50.0 Hz" in window.status.text()


def test_level_evens_out_two_voices_in_the_preview_and_the_export(qtbot, window, short_example, tmp_path):
    x, rate = read_audio(short_example)
    half = x.shape[1] // 2
    uneven = write_audio(tmp_path / "interview.wav", np.concatenate([0.3 * x[:, :half], x[:, half:]], axis=1), rate, bit_depth=24)
    window.open_files([uneven])
    wait_rendered(qtbot, window)
    halves = lambda y: 10 * np.log10(np.mean(y[0, :half].astype(float) ** 2) / np.mean(y[0, half:].astype(float) ** 2))
    plain = halves(window.session.selected.cleaned)
    window.controls.level.setChecked(True)
    window._rerender.timeout.emit()
    qtbot.waitUntil(lambda: window.session.selected.settings_key[-1] is True, timeout=60000)
    wait_rendered(qtbot, window)
    levelled = halves(window.session.selected.cleaned)
    assert plain < -8.0 and levelled > plain + 4.0, (plain, levelled)
    out = tmp_path / "even.wav"
    window.export_current(out)
    qtbot.waitUntil(lambda: window.session.selected.status == Status.EXPORTED, timeout=60000)
    assert "levelled: voices turned " in window.status.text()


def test_ab_toggle_keeps_the_playhead_and_matches_loudness(qtbot, window, short_example):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    window.seek(2.5)
    assert window.player.which == "B"
    window.activateWindow()
    window.view.setFocus()  # the spectrograms, as after a click to seek
    qtbot.keyClick(window.view, Qt.Key_Tab)
    assert window.player.which == "A" and window.player.seconds == pytest.approx(2.5, abs=1e-3)
    assert "original (A)" in window.ab_button.text()
    from plugin_host.loudness import LoudnessMeter

    levels = []
    for key in ("A", "B"):  # what the output callback plays, from the start
        window.player.which, window.player.position = key, 0
        heard = np.zeros((5 * RATE, 1), np.float32)
        for start in range(0, len(heard), 480):
            window.player._callback(heard[start : start + 480], 480, None, None)
        m = LoudnessMeter(RATE, 1)
        m.add(heard.T)
        levels.append(m.integrated_lufs())
        source = window.session.selected.noisy if key == "A" else window.session.selected.cleaned
        np.testing.assert_allclose(heard[:, 0], source[0] * window.player.gains[key], rtol=1e-6)
    assert abs(levels[0] - levels[1]) < 0.1  # "cleaner" must not just mean "quieter"
    # the player plays the recording's own arrays: no copies of an hour-long episode
    assert np.shares_memory(window.player.sources["A"], window.session.selected.noisy)
    assert np.shares_memory(window.player.sources["B"], window.session.selected.cleaned)
    window.player.which, window.player.position = "A", int(2.5 * RATE)
    qtbot.keyClick(window.queue, Qt.Key_Tab)  # from the list too: anywhere on the page
    assert window.player.which == "B"


def test_the_listening_keys_belong_to_the_clean_page_not_the_live_page(qtbot, window, short_example):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    window.activateWindow()
    window.tabs.setCurrentWidget(window.live)
    window.live.start_button.setFocus()
    qtbot.keyClick(window.live.start_button, Qt.Key_Tab)
    # Tab moves the focus, as in any form; it switched the (unseen) file player to A before
    assert window.player.which == "B" and window.focusWidget() is not window.live.start_button
    status = window.status.text()
    qtbot.keyClick(window.focusWidget(), Qt.Key_Space)
    assert not window.player.playing and window.status.text() == status  # Space did not start the file's playback
    window.tabs.setCurrentIndex(0)
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key_Tab)
    assert window.player.which == "A"


def test_a_long_recording_held_in_file_backed_maps_renders_plays_and_exports(qtbot, window, short_example, tmp_path, monkeypatch):
    from desktop_app import worker

    monkeypatch.setattr(worker, "SPILL_BYTES", 0)  # every recording counts as long
    monkeypatch.setattr(worker, "SPILL_MARGIN_BYTES", 0)
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    rec = window.session.selected
    assert isinstance(rec.noisy, np.memmap) and isinstance(rec.cleaned, np.memmap)
    x, _ = read_audio(short_example)
    np.testing.assert_allclose(rec.noisy, x, atol=1e-6)
    player = window.player
    for which, source in (("B", rec.cleaned), ("A", rec.noisy)):  # the audio callback reads the maps as it reads arrays
        player.which, player.position = which, RATE
        out = np.zeros((4800, 1), np.float32)
        player._callback(out, 4800, None, None)
        np.testing.assert_allclose(out[:, 0], source[0, RATE : RATE + 4800] * player.gains[which], rtol=1e-6)
    window.export_current(tmp_path / "exported.wav")
    qtbot.waitUntil(lambda: rec.status == Status.EXPORTED, timeout=60000)
    np.testing.assert_allclose(read_audio(tmp_path / "exported.wav")[0], rec.cleaned, atol=1e-3)


def test_loop_selection(qtbot, window, short_example):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    window.seek(1.0)
    window.loop_button.setChecked(True)
    assert window.player.loop == (RATE, 3 * RATE)
    out = np.zeros((RATE * 3, 1), np.float32)
    window.player._callback(out, len(out), None, None)  # 3 s through a 2 s loop wraps once
    assert window.player.position == RATE + RATE
    window.loop_button.setChecked(False)
    assert window.player.loop is None


def test_changing_the_model_rerenders(qtbot, window, short_example):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    first = window.session.selected.cleaned.copy()
    idx = window.controls.model.findData("spectral_subtraction")
    window.controls.model.setCurrentIndex(idx)
    qtbot.waitUntil(lambda: window.session.selected.settings_key[0] == "spectral_subtraction" and window.session.selected.status == Status.DONE, timeout=60000)
    assert not np.array_equal(first, window.session.selected.cleaned)
    assert Settings.load().model == "spectral_subtraction"  # remembered between runs


def test_the_export_bit_rate_renders_nothing_again_and_sets_an_mp3_exports_rate(qtbot, window, short_example, tmp_path):
    mutagen = pytest.importorskip("mutagen")
    x, rate = read_audio(short_example)
    long_take = write_audio(tmp_path / "long.wav", np.tile(x, (1, 6)), rate)
    window.open_files([long_take])
    qtbot.waitUntil(lambda: window.progress.value() > 0 and window.job.isRunning(), timeout=60000)
    job = window.job
    window.controls.bitrate.setCurrentIndex(window.controls.bitrate.findData(64))
    window._rerender.timeout.emit()  # as the settle timer would, while the render runs
    assert window.job is job and not job._cancel  # an export setting: the render goes on
    wait_rendered(qtbot, window, timeout=120000)
    assert Settings.load().bitrate_kbps == 64
    window.export_current(tmp_path / "episode.mp3")
    qtbot.waitUntil(lambda: window.session.selected.status == Status.EXPORTED, timeout=60000)
    assert mutagen.File(tmp_path / "episode.mp3").info.bitrate == 64000  # not the encoder's 320
    window.export_current(tmp_path / "episode.flac")
    said = f"Exported {tmp_path / 'episode.flac'} (bit rate 64 kbps not used: FLAC is lossless)"
    qtbot.waitUntil(lambda: window.status.text() == said, timeout=60000)


def test_export_writes_the_cleaned_file(qtbot, window, short_example, tmp_path):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    out = tmp_path / "exported.wav"
    window.export_current(out)
    # the job's "done" reaches the GUI thread as a queued signal, after the thread itself has ended
    qtbot.waitUntil(lambda: out.exists() and window.session.selected.status == Status.EXPORTED, timeout=60000)
    y, rate = read_audio(out)
    x, _ = read_audio(short_example)
    assert rate == RATE and y.shape == x.shape
    assert np.max(np.abs(y - window.session.selected.cleaned)) < 1e-3  # what you heard is what you get
    window.export_current(tmp_path / "typed_without_extension")  # as typed in the save dialog
    qtbot.waitUntil(lambda: not window.export_job.isRunning(), timeout=60000)
    qtbot.waitUntil(lambda: (tmp_path / "typed_without_extension.wav").exists(), timeout=5000)
    assert not window.error_boxes


def test_export_keeps_the_tags_and_says_what_the_render_noted(qtbot, window, short_example, tmp_path):
    mutagen = pytest.importorskip("mutagen")
    import soundfile as sf
    from mutagen.id3 import APIC, TIT2

    x, _ = read_audio(short_example)
    src = tmp_path / "ep7.mp3"
    write_audio(src, x, RATE)
    m = mutagen.File(src)
    m.add_tags()
    m.tags.add(TIT2(encoding=3, text=["Episode 7"]))
    m.tags.add(APIC(encoding=3, mime="image/png", type=3, desc="", data=b"\x89PNG"))
    m.save()
    floaty = tmp_path / "take.wav"  # as a live recording writes it
    sf.write(str(floaty), x.T, RATE, subtype="FLOAT")
    window.open_files([src, floaty])
    wait_rendered(qtbot, window)
    window.queue.setCurrentRow(0)
    qtbot.waitUntil(lambda: window.session.selected.path == src, timeout=5000)
    window.export_current(tmp_path / "ep7_clean.mp3")
    qtbot.waitUntil(lambda: window.session.selected.status == Status.EXPORTED, timeout=60000)
    tags = mutagen.File(tmp_path / "ep7_clean.mp3").tags
    assert str(tags["TIT2"]) == "Episode 7" and tags.getall("APIC")[0].data == b"\x89PNG"
    assert window.status.text() == f"Exported {tmp_path / 'ep7_clean.mp3'}"
    window.queue.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.session.selected.path == floaty, timeout=5000)
    window.export_current(tmp_path / "take_clean.flac")
    qtbot.waitUntil(lambda: window.session.selected.status == Status.EXPORTED, timeout=60000)
    assert window.status.text() == f"Exported {tmp_path / 'take_clean.flac'} (32-bit input written as 24-bit FLAC (the deepest FLAC holds))"
    assert not window.error_boxes


def test_export_all_to_a_folder(qtbot, window, short_example, tmp_path):
    other = write_audio(tmp_path / "other.flac", read_audio(short_example)[0][:, : 2 * RATE])
    window.open_files([short_example, other])
    wait_rendered(qtbot, window)
    folder = tmp_path / "out"
    folder.mkdir()
    window.export_all(folder)
    qtbot.waitUntil(lambda: not window.export_job.isRunning(), timeout=60000)
    assert sorted(p.name for p in folder.iterdir()) == ["episode_clean.wav", "other_clean.flac"]


def test_export_all_never_overwrites_one_export_with_another_and_asks_before_replacing(qtbot, window, short_example, tmp_path, monkeypatch):
    x, rate = read_audio(short_example)
    a = write_audio((tmp_path / "guest_a").mkdir() or tmp_path / "guest_a" / "take.wav", x[:, : 1 * RATE], rate)
    b = write_audio((tmp_path / "guest_b").mkdir() or tmp_path / "guest_b" / "take.wav", x[:, : 2 * RATE], rate)
    window.open_files([a, b])
    wait_rendered(qtbot, window)
    folder = tmp_path / "out"
    folder.mkdir()
    asked = []
    monkeypatch.setattr(window, "confirm_replace_existing", lambda existing: asked.append([p.name for p in existing]) or answer)

    def export(status):
        window.export_all(folder)
        qtbot.waitUntil(lambda: not window.export_job.isRunning() and window.status.text() == status, timeout=60000)

    answer = "replace"
    export(f"Exported 2 of 2 files to {folder}.")
    # both takes, not the second over the first (both were take_clean.wav)
    assert sorted(p.name for p in folder.iterdir()) == ["guest_a-take_clean.wav", "guest_b-take_clean.wav"]
    assert read_audio(folder / "guest_a-take_clean.wav")[0].shape[1] == RATE and read_audio(folder / "guest_b-take_clean.wav")[0].shape[1] == 2 * RATE
    assert asked == []
    answer = "cancel"
    before = (folder / "guest_a-take_clean.wav").stat().st_mtime_ns
    window.export_all(folder)
    assert asked == [["guest_a-take_clean.wav", "guest_b-take_clean.wav"]]
    assert window.status.text() == "Export cancelled: nothing was written." and (folder / "guest_a-take_clean.wav").stat().st_mtime_ns == before
    answer = "skip"
    (folder / "guest_b-take_clean.wav").unlink()
    export(f"Exported {folder / 'guest_b-take_clean.wav'}")
    assert (folder / "guest_a-take_clean.wav").stat().st_mtime_ns == before and (folder / "guest_b-take_clean.wav").is_file()
    answer = "skip"
    window.export_all(folder)
    assert window.status.text() == f"Nothing to export: every file is already in {folder}."


@pytest.mark.parametrize("name, exported", [("discord.opus", "discord_clean.opus"), ("zoom.m4a", "zoom_clean.m4a"), ("show.mp4", "show_clean.mp4")])
def test_opus_m4a_and_video_recordings_open_and_export(qtbot, window, short_example, tmp_path, name, exported):
    """Opus goes out as Opus, a Zoom or phone M4A as M4A, a video as the video (through FFmpeg)."""
    import soundfile as sf

    x, rate = read_audio(short_example)
    if name.endswith(".opus"):
        sf.write(str(tmp_path / name), x[:, : 2 * RATE].T, rate, format="OGG", subtype="OPUS")
    else:
        pytest.importorskip("av")
        from conftest import write_av

        write_av(tmp_path / name, x[:, : 2 * RATE], rate, video=name.endswith(".mp4"))
    window.open_files([tmp_path / name])
    wait_rendered(qtbot, window)
    assert not window.error_boxes and window.session.selected.status == Status.DONE
    assert window.session.selected.cleaned.shape == (1, 2 * RATE)
    folder = tmp_path / "out"
    folder.mkdir()
    window.export_all(folder)
    qtbot.waitUntil(lambda: not window.export_job.isRunning(), timeout=60000)
    assert [p.name for p in folder.iterdir()] == [exported]
    from plugin_host.audio_io import probe

    assert probe(folder / exported).frames == 2 * RATE
    assert probe(folder / exported).video == name.endswith(".mp4")  # the picture came along


def test_cancel_stops_an_export_and_leaves_no_partial_file(qtbot, window, short_example, tmp_path):
    x, rate = read_audio(short_example)
    long_take = write_audio(tmp_path / "long.wav", np.tile(x, (1, 12)), rate)  # 60 s: many chunks to stop between
    window.open_files([long_take, short_example])
    wait_rendered(qtbot, window, timeout=120000)
    assert not window.cancel_button.isEnabled()
    folder = tmp_path / "out"
    folder.mkdir()
    window.export_all(folder)
    assert window.cancel_button.isEnabled()  # an export is something to cancel
    qtbot.waitUntil(lambda: window.progress.value() > 0, timeout=60000)
    window.cancel_button.click()
    qtbot.waitUntil(lambda: not window.export_job.isRunning(), timeout=60000)
    qtbot.waitUntil(lambda: not window.cancel_button.isEnabled(), timeout=5000)
    assert window.status.text() == "Export cancelled: 0 of 2 file(s) written; the unfinished one was removed."
    assert list(folder.iterdir()) == []  # neither the cleaned file nor its temporary
    assert [r.status for r in window.session.recordings] == [Status.DONE, Status.DONE]


def test_never_overwrites_the_source_without_asking(qtbot, window, short_example, monkeypatch):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    before = short_example.read_bytes()
    monkeypatch.setattr(window, "confirm_overwrite_source", lambda path: False)
    window.export_current(short_example)
    assert short_example.read_bytes() == before and "original is kept" in window.status.text()
    monkeypatch.setattr(window, "confirm_overwrite_source", lambda path: True)
    short_example.chmod(0o640)
    window.export_current(short_example)
    qtbot.waitUntil(lambda: not window.export_job.isRunning(), timeout=60000)
    qtbot.waitUntil(lambda: short_example.read_bytes() != before, timeout=5000)
    assert short_example.stat().st_mode & 0o777 == 0o640  # the original's permissions, not a temporary's 0o600
    assert read_audio(short_example)[0].shape == (1, 5 * RATE)
    assert not [p for p in short_example.parent.iterdir() if p.name.startswith(".")]


def test_corrupt_file_shows_a_dialog(qtbot, window, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(os.urandom(3000))
    window.open_files([bad])
    qtbot.waitUntil(lambda: bool(window.error_boxes), timeout=30000)
    assert f"{bad}: not a valid audio file" in window.error_boxes[-1].text()
    assert window.session.selected.status == Status.FAILED
    assert "failed" in window.queue.item(0).text()


def test_a_recording_that_could_not_be_read_is_not_exported(qtbot, window, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio")
    window.open_files([bad])
    qtbot.waitUntil(lambda: bool(window.error_boxes), timeout=30000)
    boxes = len(window.error_boxes)
    out = tmp_path / "out"
    out.mkdir()
    window.export_current(out / "broken_clean.wav")
    assert window.status.text() == "Nothing to export: broken.wav could not be read."
    window.export_all(out)  # every recording failed: there was an IndexError here
    assert window.status.text() == "Nothing to export: none of the recordings could be read."
    assert window.export_job is None and len(window.error_boxes) == boxes and list(out.iterdir()) == []


def test_status_line_counts_the_failed_recordings(qtbot, window, short_example, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio")
    window.open_files([short_example, bad])
    qtbot.waitUntil(lambda: "rendered" in window.status.text(), timeout=60000)
    assert window.status.text() == "1 of 2 recordings rendered; 1 failed (the list says why)."
    assert [r.status for r in window.session.recordings] == [Status.DONE, Status.FAILED]


def test_unwritable_export_folder_shows_a_dialog(qtbot, window, short_example, tmp_path):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    window.export_current(blocker / "out.wav")
    qtbot.waitUntil(lambda: bool(window.error_boxes), timeout=30000)
    assert "output folder does not exist" in window.error_boxes[-1].text()


def test_errors_are_logged(qtbot, window, tmp_path, isolated_config):
    from desktop_app.__main__ import setup_logging

    path = setup_logging()
    window.show_error("something went wrong: test")
    import logging

    for h in logging.getLogger("noisenil").handlers:
        h.flush()
    assert "something went wrong: test" in open(path).read()


def test_screenshot_option(tmp_path, short_example):
    png = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", NOISENIL_CONFIG_DIR=str(tmp_path / "cfg"))
    r = subprocess.run([sys.executable, "-m", "desktop_app", str(short_example), "--screenshot", str(png)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from PySide6.QtGui import QImage

    img = QImage(str(png))
    assert (img.width(), img.height()) == (1280, 800)


def test_drag_and_drop_opens_files(qtbot, window, short_example):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(short_example))])
    event = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    assert [r.path for r in window.session.recordings] == [short_example.resolve()]
    wait_rendered(qtbot, window)
    window.dropEvent(event)  # the same file twice is not queued twice
    assert len(window.session.recordings) == 1


def test_a_dropped_folder_opens_the_audio_files_in_it(qtbot, window, short_example, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    show = tmp_path / "show"
    (show / "ep1").mkdir(parents=True)
    x, rate = read_audio(short_example)
    a = write_audio(show / "intro.flac", x[:, : rate], rate)
    b = write_audio(show / "ep1" / "take[1].wav", x[:, : rate], rate)  # brackets: a name, not a pattern
    (show / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(show)), QUrl.fromLocalFile(str(tmp_path / "empty"))])
    window.dropEvent(QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert [r.path for r in window.session.recordings] == [b.resolve(), a.resolve(), (tmp_path / "empty").resolve()]
    wait_rendered(qtbot, window)
    assert [r.status for r in window.session.recordings] == [Status.DONE, Status.DONE, Status.FAILED]
    # the list is redrawn on the GUI thread when the worker's failure signal arrives, after the status is set
    qtbot.waitUntil(lambda: "[failed]" in window.queue.item(2).text(), timeout=5000)
    assert window.queue.item(2).text() == "empty [failed]: is a folder with no audio files in it"
    window.queue.setCurrentRow(2)  # a failed one shows empty plots on the usual axes (kHz, not a tiny auto-scaled range)
    assert window.view.before.viewRange()[1] == [0.0, 24.0]


def test_offline_models_render_files_but_are_not_offered_live(qtbot, window, short_example):
    """The seed zoo's offline models (they look ahead) work on files and say so; the Live page offers
    only streaming models."""
    files = [window.controls.model.itemData(i) for i in range(window.controls.model.count())]
    live = [window.live.model.itemData(i) for i in range(window.live.model.count())]
    assert {"dncnn", "fcn_dfl", "ddae"} <= set(files)
    assert "ddae" in live and "wiener" in live and not {"dncnn", "resunet", "mel_diffusion", "fcn_dfl"} & set(live)
    idx = window.controls.model.findData("fcn_dfl")
    assert "(offline)" in window.controls.model.itemText(idx)
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    window.controls.model.setCurrentIndex(idx)
    assert "offline" in window.controls.model_info.text()
    qtbot.waitUntil(lambda: window.session.selected.settings_key[0] == "fcn_dfl" and window.session.selected.status == Status.DONE, timeout=60000)
    cleaned, noisy = window.session.selected.cleaned, window.session.selected.noisy
    assert cleaned.shape == noisy.shape and np.all(np.isfinite(cleaned))


def test_a_remembered_model_since_removed_does_not_break_the_app(qtbot, isolated_config, short_example):
    # e.g. deepfilternet3 was registered, then its folder deleted: the app opens on the default
    isolated_config.mkdir(parents=True)
    (isolated_config / "settings.json").write_text('{"model": "deepfilternet3_gone", "preset": "gone", "attenuation_limit_db": 18}')
    w = MainWindow(Settings.load())
    qtbot.addWidget(w)
    w.open_files([short_example])
    wait_rendered(qtbot, w)
    assert not w.error_boxes and w.session.selected.status == Status.DONE
    assert w.controls.model.currentData() == w.session.selected.settings_key[0] == "noisenil_fb"
    assert w.controls.strength.value() == 18
    w.close()


def test_recordings_can_be_removed_from_the_list(qtbot, window, short_example, tmp_path):
    x, rate = read_audio(short_example)
    long_take = write_audio(tmp_path / "long.wav", np.tile(x, (1, 24)), rate)  # 2 min: still rendering when removed
    other = write_audio(tmp_path / "other.wav", x[:, : 2 * RATE], rate)
    window.open_files([long_take, short_example, other])
    qtbot.waitUntil(lambda: window.job is not None and window.job.isRunning() and window.job.recording.name == "long.wav", timeout=10000)
    window.queue.setFocus()
    qtbot.keyClick(window.queue, Qt.Key_Delete)  # the selected one, which is rendering
    assert [r.name for r in window.session.recordings] == ["episode.wav", "other.wav"]
    assert window.queue.count() == 2 and window.queue.currentRow() == 0 and window.session.selected.name == "episode.wav"
    wait_rendered(qtbot, window)
    assert [r.status for r in window.session.recordings] == [Status.DONE, Status.DONE]
    assert window.player.length == 5 * RATE  # the one shown now, not the removed one
    window.select(1)
    window.remove_recording(0)  # not the selected one: the selection stays on other.wav
    assert window.session.selected.name == "other.wav" and window.queue.currentRow() == 0
    assert [window.queue.item(i).text().split(" [")[0] for i in range(window.queue.count())] == ["other.wav"]
    window.remove_all()
    assert window.queue.count() == 0 and window.session.selected is None
    assert window.player.length == 0  # nothing left to play
    assert long_take.is_file() and short_example.is_file()  # removing never touches the files


def test_play_does_not_play_the_previous_recording_when_the_shown_one_has_nothing_to_play(qtbot, window, short_example, tmp_path):
    window.open_files([short_example])
    wait_rendered(qtbot, window)
    assert window.player.length == 5 * RATE
    x, rate = read_audio(short_example)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVE")
    window.open_files([broken])
    window.queue.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.session.recordings[1].status == Status.FAILED, timeout=30000)
    assert window.player.length == 0
    window.toggle_play()
    assert not window.player.playing and window.status.text() == "Nothing to play: broken.wav could not be read."


@pytest.mark.parametrize("button, answer", [("Replace", "replace"), ("Skip those", "skip"), ("Cancel", "cancel")])
def test_the_replace_question_answers_by_its_buttons(qtbot, window, tmp_path, button, answer):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    shown = []

    def click():
        box = QApplication.activeModalWidget()
        shown.append(box.text())
        next(b for b in box.buttons() if b.text().replace("&", "") == button).click()

    QTimer.singleShot(200, click)
    assert window.confirm_replace_existing([tmp_path / "a_clean.wav", tmp_path / "b_clean.wav"]) == answer
    assert shown == [f"2 of the cleaned files already exist in {tmp_path}:\na_clean.wav\nb_clean.wav"]
