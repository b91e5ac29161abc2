import hashlib
import re
import os
import resource
import signal
import stat
import struct
import sys

import numpy as np
import pytest
from conftest import read_audio, run_cli, speechlike, write_audio

from plugin_host.audio_io import PARTIAL_TAG, read_chunks
from plugin_host.cli import main
from plugin_host.loudness import LoudnessMeter

RATE = 48000


def noisy_signal(seconds=2.0, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = speechlike(seconds) + 0.03 * rng.standard_normal(int(seconds * RATE)).astype(np.float32)
    return np.tile(x, (channels, 1))


def lag(a, b) -> int:
    """Samples by which ``a`` lags ``b`` (the peak of their cross-correlation)."""
    from scipy.signal import correlate

    return int(np.argmax(correlate(a, b, "full", method="fft"))) - (len(b) - 1)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def no_partials(folder):
    return not [p for p in folder.rglob("*") if PARTIAL_TAG in p.name]


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    return write_audio(d / "talk.wav", noisy_signal(channels=2), bit_depth=24)


def test_render_single_file_to_file_keeps_format(tmp_path, src, capsys):
    out = tmp_path / "clean.wav"
    assert main(["render", str(src), "-o", str(out), "-q"]) == 0
    y, rate = read_audio(out)
    x, _ = read_audio(src)
    assert rate == RATE and y.shape == x.shape
    from pedalboard.io import AudioFile

    with AudioFile(str(out)) as f:
        assert f.file_dtype == "int24"
    assert pause_reduction_db(x, y) > 10.0  # white noise in the pauses between bursts
    stdout = capsys.readouterr().out
    assert "1 done, 0 skipped, 0 failed" in stdout and f"wrote {out}" in stdout


def test_without_an_output_each_file_is_written_beside_itself(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    a = write_audio(tmp_path / "raw" / "ep1.wav", noisy_signal(1.0))
    b = write_audio(tmp_path / "ep2.flac", noisy_signal(1.0, seed=1))
    assert main(["render", str(a), str(b), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["ep1.wav", "ep1_clean.wav"]
    assert (tmp_path / "ep2_clean.flac").is_file()
    x, _ = read_audio(a)
    assert pause_reduction_db(x, read_audio(tmp_path / "raw" / "ep1_clean.wav")[0]) > 10.0
    capsys.readouterr()
    assert main(["render", str(a), "--format", "flac", "-q"]) == 0  # --format gives the suffix
    assert (tmp_path / "raw" / "ep1_clean.flac").is_file()
    assert main(["render", str(a), "-q"]) == 0  # a second run skips what is there
    assert f"skip {a}: {tmp_path / 'raw' / 'ep1_clean.wav'} exists" in capsys.readouterr().err
    # a folder or a pattern must say where: its cleaned files would be read back as inputs
    for text in (str(tmp_path / "raw"), str(tmp_path / "raw" / "*.wav")):
        assert main(["render", text]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {text}: a folder or a pattern needs -o OUTPUT_FOLDER (files named one by one are written beside themselves as NAME_clean.EXT)"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["ep1.wav", "ep1_clean.flac", "ep1_clean.wav"]


def test_render_folder_recursive_glob_and_skip(tmp_path, capsys):
    root = tmp_path / "show"
    (root / "ep1").mkdir(parents=True)
    write_audio(root / "intro.flac", noisy_signal(1.0))
    write_audio(root / "ep1" / "a.wav", noisy_signal(1.0, seed=1))
    write_audio(root / "ep1" / "b.wav", noisy_signal(1.0, seed=2))
    # a recorder's card written on by a Mac: AppleDouble files (not audio) and a Trash with a deleted take
    (root / "ep1" / "._a.wav").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    (root / ".Trashes" / "501").mkdir(parents=True)
    write_audio(root / ".Trashes" / "501" / "deleted.wav", noisy_signal(1.0, seed=3))
    out = tmp_path / "out"
    assert main(["render", str(root), "-o", str(out), "-q"]) == 0  # none of them read, none failed
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.*")) == ["ep1/a.wav", "ep1/b.wav", "intro.flac"]
    before = (out / "ep1" / "a.wav").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["render", str(root / "ep1" / "*.wav"), "-o", str(tmp_path / "out" / "ep1"), "-q"]) == 0
    captured = capsys.readouterr()
    assert "0 done, 2 skipped, 0 failed" in captured.out
    assert "exists (use --overwrite)" in captured.err
    assert (out / "ep1" / "a.wav").stat().st_mtime_ns == before
    assert main(["render", str(root / "ep1" / "a.wav"), "-o", str(out / "ep1"), "--overwrite", "-q"]) == 0
    assert (out / "ep1" / "a.wav").stat().st_mtime_ns != before


def test_an_output_folder_inside_the_input_folder_is_not_read_back_as_input(tmp_path, capsys):
    root = tmp_path / "raw"
    (root / "ep1").mkdir(parents=True)
    write_audio(root / "intro.flac", noisy_signal(1.0))
    write_audio(root / "ep1" / "a.wav", noisy_signal(1.0, seed=1))
    out = root / "clean"
    for _ in range(2):  # the same command twice: the second finds both done, and nothing else to do
        assert main(["render", str(root), "-o", str(out), "--model", "wiener", "-q"]) == 0
    assert "0 done, 2 skipped, 0 failed" in capsys.readouterr().out
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.*")) == ["clean/ep1/a.wav", "clean/intro.flac", "ep1/a.wav", "intro.flac"]
    # a recursive glob keeps the folders below its root, as a folder input does, and skips the outputs too
    glob_out = root / "clean_glob"
    for _ in range(2):
        assert main(["render", str(root / "**" / "*.*"), "-o", str(glob_out), "--model", "wiener", "-q"]) == 0
    assert "0 done, 4 skipped, 0 failed" in capsys.readouterr().out  # the inputs and the first folder's outputs
    assert sorted(str(p.relative_to(glob_out)) for p in glob_out.rglob("*.*")) == ["clean/ep1/a.wav", "clean/intro.flac", "ep1/a.wav", "intro.flac"]
    # the input folder itself as the output folder is still refused, file by file
    assert main(["render", str(root / "ep1"), "-o", str(root / "ep1"), "--model", "wiener", "-q"]) == 1
    assert "would overwrite an input" in capsys.readouterr().err


def test_outputs_get_ordinary_permissions_and_a_replaced_file_keeps_its_own(tmp_path, src):
    """The temporary an output is written as is private (mkstemp: 0o600); the output itself gets
    what any new file gets (0o666 less the umask), or the permissions of the file it replaces."""
    umask = os.umask(0o022)
    os.umask(umask)
    out = tmp_path / "out"
    assert main(["render", str(src), "-o", str(out), "--model", "wiener", "-q"]) == 0
    assert stat.S_IMODE((out / "talk.wav").stat().st_mode) == 0o666 & ~umask
    (out / "talk.wav").chmod(0o640)
    assert main(["render", str(src), "-o", str(out), "--model", "wiener", "--overwrite", "-q"]) == 0
    assert stat.S_IMODE((out / "talk.wav").stat().st_mode) == 0o640
    assert main(["render", str(src), "-o", str(tmp_path / "loud.flac"), "--loudness-lufs", "-20", "--model", "wiener", "-q"]) == 0
    assert stat.S_IMODE((tmp_path / "loud.flac").stat().st_mode) == 0o666 & ~umask  # the loudness pass's second writer too


def test_parallel_jobs_give_the_same_files(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(3):
        write_audio(root / f"f{i}.wav", noisy_signal(1.0, seed=i))
    assert main(["render", str(root), "-o", str(tmp_path / "one"), "-q"]) == 0
    assert main(["render", str(root), "-o", str(tmp_path / "two"), "--jobs", "2", "-q"]) == 0
    for i in range(3):
        assert digest(tmp_path / "one" / f"f{i}.wav") == digest(tmp_path / "two" / f"f{i}.wav")


def test_format_rate_depth_and_channels_can_be_changed(tmp_path, src):
    out = tmp_path / "o"
    assert main(["render", str(src), "-o", str(out), "--format", "flac", "--sample-rate", "44100", "--bit-depth", "16", "--channels", "1", "-q"]) == 0
    from pedalboard.io import AudioFile

    with AudioFile(str(out / "talk.flac")) as f:
        assert (f.samplerate, f.num_channels, f.file_dtype, f.frames) == (44100, 1, "int16", 88200)


def test_aif_and_bwf_inputs_are_written_in_their_own_format(tmp_path, capsys):
    # Logic and GarageBand name AIFF files .aif; pedalboard writes them though it does not list .aif
    d = tmp_path / "in"
    d.mkdir()
    write_audio(d / "take.aif", noisy_signal(), bit_depth=24)
    write_audio(d / "field.bwf", noisy_signal(channels=2), bit_depth=16)
    assert main(["render", str(d), "-o", str(tmp_path / "out"), "-q"]) == 0
    import soundfile as sf

    aif, bwf = sf.info(str(tmp_path / "out" / "take.aif")), sf.info(str(tmp_path / "out" / "field.bwf"))
    assert (aif.format, aif.subtype, aif.frames) == ("AIFF", "PCM_24", 2 * RATE)
    assert (bwf.format, bwf.subtype, bwf.channels, bwf.frames) == ("WAV", "PCM_16", 2, 2 * RATE)
    assert main(["render", str(d / "take.aif"), "-o", str(tmp_path / "one.aif"), "-q"]) == 0
    assert (tmp_path / "one.aif").is_file()  # a file, not a folder named one.aif


def pause_reduction_db(x, y):
    """How far the noise in the test signal's pauses went down (after half a second of settling)."""
    pauses = np.abs(speechlike(x.shape[1] / RATE)) == 0
    pauses[: RATE // 2] = False
    return 10 * np.log10(np.mean(x[:, pauses] ** 2) / np.mean(y[:, pauses] ** 2))


def decoded(path) -> tuple[np.ndarray, int]:
    """A file as a render reads it (Opus, M4A: through soundfile or FFmpeg, priming and padding left out)."""
    from plugin_host.audio_io import probe

    info = probe(path)
    return np.concatenate(list(read_chunks(info, info.sample_rate * 5)), axis=1), info.sample_rate


def test_ogg_opus_inputs_are_read_and_written_as_opus(tmp_path, capsys):
    # Discord recorders and voice notes give Ogg Opus; pedalboard decodes Ogg Vorbis only
    import soundfile as sf

    d = tmp_path / "in"
    d.mkdir()
    x = noisy_signal(channels=2)
    sf.write(str(d / "craig.opus"), x.T, RATE, format="OGG", subtype="OPUS")
    sf.write(str(d / "note.ogg"), x[:1].T, RATE, format="OGG", subtype="OPUS")
    (d / "broken.opus").write_bytes(b"OggS" + bytes(500))
    assert main(["render", str(d), "-o", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert f"FAILED {d / 'broken.opus'}: not a valid audio file" in captured.out + captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["craig.opus", "note.ogg"]
    assert sf.info(str(tmp_path / "out" / "craig.opus")).subtype == "OPUS"  # Opus back (through FFmpeg's libopus)
    assert sf.info(str(tmp_path / "out" / "note.ogg")).subtype == "OPUS"  # Opus in an .ogg (Craig) stays Opus in an .ogg
    for name, channels in (("craig.opus", 2), ("note.ogg", 1)):
        y, rate = decoded(tmp_path / "out" / name)
        assert rate == RATE and y.shape == (channels, 2 * RATE)  # sample for sample: the Opus pre-skip left out
        assert pause_reduction_db(x[:channels], y) > 10.0
    assert lag(decoded(tmp_path / "out" / "craig.opus")[0][0], x[0]) == 0


def test_wave64_and_caf_inputs_are_read_and_written_as_wav_with_their_depth(tmp_path, capsys):
    # Reaper and Sound Forge write takes past 4 GB as Wave64; Logic can save CAF: pedalboard reads neither
    import soundfile as sf

    d = tmp_path / "in"
    d.mkdir()
    x = noisy_signal(channels=2)
    sf.write(str(d / "reaper.w64"), x.T, RATE, format="W64", subtype="PCM_24")
    sf.write(str(d / "logic.caf"), x[:1].T, RATE, format="CAF", subtype="PCM_16")
    assert main(["render", str(d), "-o", str(tmp_path / "out"), "-q"]) == 0
    for name, channels, subtype in (("reaper.wav", 2, "PCM_24"), ("logic.wav", 1, "PCM_16")):
        info = sf.info(str(tmp_path / "out" / name))
        assert (info.format, info.subtype, info.channels, info.frames) == ("WAV", subtype, channels, 2 * RATE)
        assert pause_reduction_db(x[:channels], read_audio(tmp_path / "out" / name)[0]) > 10.0


def test_phone_zoom_and_video_recordings_are_read_through_ffmpeg(tmp_path, capsys):
    """M4A (AAC from iPhone voice memos and Zoom, ALAC from Apple's apps), the sound of an MP4
    video, Opus in WebM: read sample-aligned and whole; an M4A written back as M4A (AAC at its bit
    rate, ALAC lossless), a video as the video, a WebM as WebM."""
    pytest.importorskip("av", reason="M4A/MP4 need PyAV (a core dependency)")
    import soundfile as sf
    from conftest import write_av
    from plugin_host.audio_io import probe

    d = tmp_path / "in"
    d.mkdir()
    x = noisy_signal(2.0, channels=2)
    write_av(d / "zoom.m4a", x)
    write_av(d / "memo_alac.m4a", x[:1], codec="alac", sample_format="s16p")
    write_av(d / "episode.mp4", x, video=True)
    write_av(d / "call.webm", x[:1], codec="libopus")
    for name in ("zoom.m4a", "memo_alac.m4a", "episode.mp4", "call.webm"):
        info = probe(d / name)
        y = np.concatenate(list(read_chunks(info, 10000)), axis=1)
        assert y.shape == (info.channels, 2 * RATE), name  # no encoder priming or padding
        ref = x[0]
        assert lag(y[0], ref) == 0, name
        snr_db = 10 * np.log10(np.sum(ref**2) / np.sum((y[0] - ref) ** 2))
        assert snr_db > (80.0 if "alac" in name else 14.0), (name, snr_db)  # ALAC is lossless (16 bits); AAC/Opus at their default rates: 16 dB here, 12 dB one sample off
    assert main(["render", str(d), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["call.webm", "episode.mp4", "memo_alac.m4a", "zoom.m4a"]
    assert main(["render", str(d / "episode.mp4"), "-o", str(tmp_path / "episode.wav"), "-q"]) == 0  # its sound alone, for an editor
    out = sf.info(str(tmp_path / "episode.wav"))
    assert (out.format, out.subtype, out.channels, out.frames) == ("WAV", "PCM_24", 2, 2 * RATE)  # 24 bits from a lossy codec
    assert pause_reduction_db(x, read_audio(tmp_path / "episode.wav")[0]) > 10.0
    for name, channels, codec in (("zoom.m4a", 2, "aac"), ("memo_alac.m4a", 1, "alac"), ("episode.mp4", 2, "aac"), ("call.webm", 1, "opus")):
        info = probe(tmp_path / "out" / name)
        assert (info.codec, info.channels, info.frames) == (codec, channels, 2 * RATE), name  # priming and padding left out
        y = decoded(tmp_path / "out" / name)[0]
        assert pause_reduction_db(x[:channels], y) > 10.0, name
        assert lag(y[0], x[0]) == 0, name
    # ALAC is lossless: the M4A holds what a WAV render of the same take holds, to the 16-bit step
    assert main(["render", str(d / "memo_alac.m4a"), "-o", str(tmp_path / "memo.wav"), "-q"]) == 0
    assert np.max(np.abs(decoded(tmp_path / "out" / "memo_alac.m4a")[0] - read_audio(tmp_path / "memo.wav")[0])) <= 1.5 / 32768
    deep = write_av(tmp_path / "deep.m4a", 0.5 * x[:1], codec="alac", sample_format="s32p")  # 24-bit ALAC
    assert main(["render", str(deep), "-q"]) == 0 and main(["render", str(deep), "-o", str(tmp_path / "deep.wav"), "--bit-depth", "32", "-q"]) == 0
    assert np.max(np.abs(decoded(tmp_path / "deep_clean.m4a")[0] - read_audio(tmp_path / "deep.wav")[0])) <= 1.5 / 2**23
    from plugin_host.bitrate import source_kbps

    kept, given = source_kbps(probe(tmp_path / "out" / "zoom.m4a")), source_kbps(probe(d / "zoom.m4a"))
    assert abs(kept / given - 1) < 0.15, (kept, given)  # AAC at the input's rate (FFmpeg's default here), not another
    (d / "broken.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + os.urandom(2000))
    write_av(d / "silent_film.mp4", None, video=True)  # a video with no sound at all
    capsys.readouterr()
    assert main(["render", str(d / "broken.m4a"), str(d / "silent_film.mp4"), "-o", str(tmp_path / "out2"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {d / 'broken.m4a'}: not a valid audio file (unknown or corrupt data)" in err
    assert f"FAILED {d / 'silent_film.mp4'}: no audio in it (a video without sound?)" in err
    # a phone's M4A has its index first: cut short, its header still promises the whole length
    import dataclasses

    from plugin_host.errors import AudioFileError

    whole = write_av(tmp_path / "whole.m4a", x[:1], faststart=True)
    cut = d / "cut.m4a"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 7 // 10])
    assert probe(cut).frames == 2 * RATE
    assert main(["render", str(cut), "-o", str(tmp_path / "cut.wav"), "-q"]) == 1
    assert f"FAILED {cut}: truncated or damaged (Invalid data found when processing input)" in capsys.readouterr().err
    assert not (tmp_path / "cut.wav").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    promised = dataclasses.replace(probe(whole), frames=2 * RATE + 5000)  # a decoder that stops quietly short
    with pytest.raises(AudioFileError, match=f"truncated: 96[0-9]{{3}} of the {2 * RATE + 5000} samples its header announces decode"):  # (the encoder's padding decodes too)
        list(read_chunks(promised, 10000))


def test_an_output_named_as_an_unwritable_audio_format_is_refused_up_front(tmp_path, src, capsys):
    assert main(["render", str(src), "-o", str(tmp_path / "talk.wma")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: -o {tmp_path / 'talk.wma'}: cannot write .wma files; choose one of .aif, .aiff, .bwf, .flac, .m4a, .m4b, .mkv, .mov, .mp3, .mp4, .ogg, .opus, .wav, .webm"
    assert not (tmp_path / "talk.wma").exists()  # it was made as a folder before
    (tmp_path / "old.wma").mkdir()  # an existing folder of that name is a folder
    assert main(["render", str(src), "-o", str(tmp_path / "old.wma"), "-q"]) == 0
    assert (tmp_path / "old.wma" / "talk.wav").is_file()


@pytest.mark.parametrize("rate", [44100, 48000])
def test_an_mp3_keeps_its_length_and_timing_generation_after_generation(tmp_path, rate):
    """The encoder's delay and padding (its LAME header) are left out when reading: without that
    each MP3 render put another 1105 samples of silence before the audio (23 ms at 48 kHz)."""
    from plugin_host.audio_io import probe

    n = 3 * rate
    t = np.arange(n) / rate
    burst = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-(((t - 1.0) / 0.05) ** 2))).astype(np.float32)
    src = write_audio(tmp_path / "gen0.mp3", burst[None], rate)

    def decoded(path):  # as NoiseNil reads it
        info = probe(path)
        return info, np.concatenate(list(read_chunks(info, 10000)), axis=1)[0]

    info, x = decoded(src)
    assert info.frames == n and lag(x, burst) == 0
    raw_in, _ = read_audio(src)  # as a decoder that ignores the header reads it
    for gen in (1, 2, 3):
        out = tmp_path / f"gen{gen}.mp3"
        assert main(["render", str(src), "-o", str(out), "--model", "wiener", "--attenuation-limit-db", "0", "-q"]) == 0
        info, y = decoded(out)
        assert info.frames == n, gen
        assert lag(y, burst) == 0, gen
        assert np.max(np.abs(y - burst)) < 0.01, gen
        raw_out, _ = read_audio(out)
        assert raw_out.shape == raw_in.shape and lag(raw_out[0], raw_in[0]) == 0
        src = out


def test_a_depth_the_output_format_cannot_hold(tmp_path, capsys):
    """32-bit float WAV (what `noisenil live --record` writes) to FLAC: FLAC holds at most 24 bits,
    so a depth kept from the input becomes 24 with a note; asked for explicitly, it is refused
    before any file. An 8-bit input is kept as 16 bits."""
    import soundfile as sf

    (tmp_path / "takes").mkdir()
    sf.write(tmp_path / "takes" / "take.wav", noisy_signal(1.0)[0], RATE, subtype="FLOAT")
    sf.write(tmp_path / "takes" / "old.wav", noisy_signal(1.0)[0], RATE, subtype="PCM_U8")
    assert main(["render", str(tmp_path / "takes"), "-o", str(tmp_path / "flac"), "--format", "flac", "--model", "wiener"]) == 0
    err = capsys.readouterr().err
    assert f"note {tmp_path / 'takes' / 'take.wav'}: 32-bit input written as 24-bit FLAC (the deepest FLAC holds)" in err.splitlines()
    assert "old.wav: " not in err.replace("done ", "")  # 8-bit to FLAC 16-bit: nothing to note
    assert (sf.info(tmp_path / "flac" / "take.flac").subtype, sf.info(tmp_path / "flac" / "old.flac").subtype) == ("PCM_24", "PCM_16")
    assert main(["render", str(tmp_path / "takes" / "old.wav"), "-o", str(tmp_path / "wav"), "--model", "wiener", "-q"]) == 0
    assert sf.info(tmp_path / "wav" / "old.wav").subtype == "PCM_16"
    for flags, message in (
        (["--format", "flac", "--bit-depth", "32"], "error: bit depth 32: FLAC holds 16 or 24 bits"),
        (["--format", "aiff", "--bit-depth", "32"], "error: bit depth 32: AIFF holds 16 or 24 bits"),
        (["--sample-rate", "7000"], "error: sample_rate must be in [8000, 192000], got 7000"),
    ):
        assert main(["render", str(tmp_path / "takes"), "-o", str(tmp_path / "refused"), *flags]) == 2
        assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "refused").exists()


def test_loudness_target_is_reached(tmp_path, src):
    out = tmp_path / "loud.wav"
    assert main(["render", str(src), "-o", str(out), "--loudness-lufs", "-16", "-q"]) == 0
    y, _ = read_audio(out)
    meter = LoudnessMeter(RATE, 2)
    meter.add(y)
    assert meter.true_peak_dbtp <= -1.0 + 0.05
    assert abs(meter.integrated_lufs() + 16) < 0.3


def test_podcast_preset_renders_at_minus_16_lufs(tmp_path, noisy_example):
    src = write_audio(tmp_path / "ep.wav", noisy_example)
    out = tmp_path / "ep_clean.wav"
    assert main(["render", str(src), "-o", str(out), "--preset", "podcast_voice", "-q"]) == 0
    y, _ = read_audio(out)
    meter = LoudnessMeter(RATE, 1)
    meter.add(y)
    assert abs(meter.integrated_lufs() + 16.0) < 0.3  # espeak speech is peaky: reached through the limiter
    assert meter.true_peak_dbtp <= -1.0 + 0.05


def test_quiet_peaky_input_is_limited_to_reach_the_target(tmp_path):
    rng = np.random.default_rng(4)
    x = 0.01 * rng.standard_normal((1, 4 * RATE)).astype(np.float32)
    x[0, ::4800] = 0.9  # clicks: a gain alone would hit the ceiling long before -14 LUFS
    src = write_audio(tmp_path / "clicky.wav", x, bit_depth=24)
    out = tmp_path / "loud.wav"
    assert main(["render", str(src), "-o", str(out), "--model", "spectral_subtraction", "--attenuation-limit-db", "0", "--loudness-lufs", "-14", "-q"]) == 0
    y, _ = read_audio(out)
    meter = LoudnessMeter(RATE, 1)
    meter.add(y)
    assert abs(meter.integrated_lufs() + 14) < 0.5 and meter.true_peak_dbtp <= -0.95
    assert no_partials(tmp_path)


def test_never_writes_onto_an_input(tmp_path, src):
    h = digest(src)
    assert main(["render", str(src), "-o", str(src.parent), "-q"]) == 1
    assert digest(src) == h


def test_stale_partial_from_a_killed_run_is_cleaned_and_the_rerun_completes(tmp_path, src):
    out = tmp_path / "o"
    out.mkdir()
    stale = out / f".talk.abc123{PARTIAL_TAG}.wav"
    stale.write_bytes(b"half a file")
    assert main(["render", str(src), "-o", str(out), "-q"]) == 0
    assert not stale.exists() and (out / "talk.wav").is_file() and no_partials(out)


def _wav_float_with(value, path):
    x = np.zeros(4800, np.float32)
    x[2400] = value
    data = x.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, RATE, RATE * 4, 4, 32)
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)


def _bad_inputs(d):
    good = write_audio(d / "good.wav", noisy_signal(0.5))
    cases = {}
    (d / "empty.wav").write_bytes(b"")
    cases["empty.wav"] = "empty file (0 bytes)"
    data = good.read_bytes()
    (d / "truncated.wav").write_bytes(data[: len(data) // 2])
    cases["truncated.wav"] = "truncated: header announces"
    flac = write_audio(d / "whole.flac", noisy_signal(0.5), bit_depth=24).read_bytes()
    (d / "whole.flac").unlink()
    (d / "cut.flac").write_bytes(flac[: len(flac) * 2 // 3])
    cases["cut.flac"] = "truncated or damaged (FLAC checksum mismatch)"
    (d / "corrupt.flac").write_bytes(os.urandom(4000))
    cases["corrupt.flac"] = "not a valid audio file"
    (d / "notes.wav").write_text("these are my show notes\n" * 50)
    cases["notes.wav"] = "not a valid audio file"
    _wav_float_with(np.nan, d / "nan.wav")
    cases["nan.wav"] = "contains NaN/Inf samples (first at 0.050 s)"
    _wav_float_with(np.inf, d / "inf.wav")
    cases["inf.wav"] = "contains NaN/Inf samples"
    write_audio(d / "zero.wav", np.zeros((1, 0), np.float32))
    cases["zero.wav"] = "no audio samples (0 frames)"
    (d / "voice.wma").write_bytes(b"\x00" * 100)
    cases["voice.wma"] = "unsupported format '.wma'"
    (d / "zoom.m4a").write_bytes(b"\x00" * 100)  # read through FFmpeg, which says less than it might
    cases["zoom.m4a"] = "not a valid audio file (unknown or corrupt data)"
    os.symlink(d / "gone.wav", d / "link.wav")
    cases["link.wav"] = "broken symbolic link"
    os.mkfifo(d / "pipe.wav")  # reading it would block forever: must be refused, not opened
    cases["pipe.wav"] = "is not a regular file"
    return good, cases


def test_every_bad_input_is_one_clear_line_and_nothing_is_damaged(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    good, cases = _bad_inputs(d)
    hashes = {p.name: digest(p) for p in d.iterdir() if p.is_file() and not p.is_symlink()}
    out = tmp_path / "out"
    inputs = [str(d / name) for name in cases] + [str(good), str(tmp_path / "missing.wav")]
    r = run_cli("render", *inputs, "-o", out, "-q")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    failed = [line for line in r.stderr.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == len(cases) + 1, r.stderr
    for name, reason in cases.items():
        lines = [line for line in failed if f"{d / name}: " in line]
        assert len(lines) == 1 and reason in lines[0], (name, lines)
    assert any("missing.wav: no such file" in line for line in failed)
    assert "1 done, 0 skipped, 13 failed" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["good.wav"]
    assert hashes == {p.name: digest(p) for p in d.iterdir() if p.is_file() and not p.is_symlink()}


def test_folder_without_audio_and_glob_without_match(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    r = run_cli("render", tmp_path / "notes", str(tmp_path / "*.mp3"), "-o", tmp_path / "out", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"FAILED {tmp_path / 'notes'}: folder holds no audio files" in r.stderr
    assert f"FAILED {tmp_path / '*.mp3'}: no file matches this pattern" in r.stderr


def test_full_disk_leaves_no_output_and_says_so(tmp_path, src):
    out = tmp_path / "o"
    out.mkdir()

    def small_disk():  # writes past 100 kB fail as on a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    r = run_cli("render", src, "-o", out, "-q", preexec_fn=small_disk)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"FAILED {out / 'talk.wav'}: write failed, disk full?" in r.stderr
    assert list(out.iterdir()) == []


def test_unwritable_or_missing_output_folder(tmp_path, src):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("render", src, "-o", blocker / "sub", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "FAILED" in r.stderr and str(src) in r.stderr


def test_bad_options_are_one_line_errors(tmp_path, src, capsys):
    r = run_cli("render", src, "-o", tmp_path, "--model", "rnnoise9000")
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown denoiser 'rnnoise9000'; valid: crced, ddae, ddae_int8, dncnn, fcn_dfl, mel_diffusion, noisenil_fb, resunet, spectral_subtraction, wiener"
    r = run_cli("render", src, "-o", tmp_path, "--attenuation-limit-db", "-5")
    assert r.returncode == 2 and r.stderr.strip() == "error: attenuation_limit_db must be in [0, 100], got -5.0"
    assert main(["render", str(src), "-o", str(tmp_path), "--model", "auto", "--attenuation-limit-db", "200"]) == 2  # auto's cap too
    assert capsys.readouterr().err.strip() == "error: attenuation_limit_db must be in [0, 100], got 200.0"
    r = run_cli("render", src, "-o", tmp_path, "--preset", "radio")
    assert r.returncode == 2 and "unknown preset 'radio'; valid: denoise_only, podcast_interview, podcast_voice" in r.stderr
    for flags, message in (
        (["--loudness-lufs", "3"], "error: loudness target (LUFS) must be in [-70, 0], got 3.0"),
        (["--loudness-lufs", "-16", "--true-peak-dbtp", "5"], "error: true-peak ceiling (dBTP) must be in [-20, 0], got 5.0"),
        (["--loudness-lufs", "-16", "--true-peak-dbtp", "nan"], "error: true-peak ceiling (dBTP) must be in [-20, 0], got nan"),
    ):
        assert main(["render", str(src), "-o", str(tmp_path), *flags]) == 2
        assert capsys.readouterr().err.strip() == message
    assert not list(tmp_path.glob("*.wav"))


def test_models_info_and_presets(tmp_path, src, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "noisenil_fb (default)" in out and "spectral_subtraction" in out and "10 ms" in out
    assert main(["info", str(src)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{src}: WAV int24, 48000 Hz, 2 ch, 0:02 (2.00 s), loudness ")
    assert "LUFS" in line and "true peak" in line
    assert main(["info", str(tmp_path / "nope.wav")]) == 1
    # a folder: every audio file in it, recursively, sorted; the same for a glob
    (src.parent / "sub").mkdir()
    other = write_audio(src.parent / "sub" / "b.flac", noisy_signal(1.0))
    capsys.readouterr()
    assert main(["info", str(src.parent)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(other), str(src)] and lines[0].startswith(f"{other}: FLAC int16, 48000 Hz, 1 ch, 0:01")
    assert main(["info", str(tmp_path / "in" / "*.wav"), str(tmp_path / "none_*.wav")]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{src}: WAV") and captured.err.strip() == f"error: {tmp_path / 'none_*.wav'}: no file matches this pattern"
    assert main(["presets"]) == 0
    assert "podcast_voice:" in capsys.readouterr().out


@pytest.mark.parametrize("bit_depth", [16, 24])
def test_intact_flac_passes_its_checksum(tmp_path, bit_depth):
    from plugin_host.audio_io import FlacChecksum, probe, read_chunks

    x = np.clip(np.random.default_rng(bit_depth).standard_normal((2, RATE)) * 0.5, -1, 1)
    path = write_audio(tmp_path / "ok.flac", x, bit_depth=bit_depth)
    assert FlacChecksum.for_file(path) is not None
    assert sum(c.shape[1] for c in read_chunks(probe(path), 10000)) == RATE  # no error raised


def test_interrupted_run_leaves_no_output_and_a_rerun_finishes(tmp_path):
    import subprocess
    import sys
    import time

    src = write_audio(tmp_path / "long.wav", noisy_signal(60.0))
    out = tmp_path / "o"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "plugin_host", "render", str(src), "-o", str(out), "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(PARTIAL_TAG in p.name for p in out.iterdir()) and time.time() < deadline:
        time.sleep(0.02)  # wait until it is writing
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "interrupted" in err
    assert list(out.iterdir()) == []  # neither a half-written output nor a temporary file
    assert main(["render", str(src), "-o", str(out), "-q"]) == 0
    assert read_audio(out / "long.wav")[0].shape == (1, 60 * RATE)


def test_progress_bars_end_at_their_total(tmp_path, capsys, monkeypatch):
    # 1.0341 s is not a whole number of tenths: the bars once had a rounded total, ran past it,
    # made tqdm warn ("clamping frac") and showed a negative time left
    src = write_audio(tmp_path / "odd.wav", noisy_signal(1.0341))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # bars are drawn on a terminal only
    assert main(["render", str(src), "-o", str(tmp_path / "out.wav")]) == 0
    err = capsys.readouterr().err
    assert "total: 100%" in err
    assert "clamping" not in err and "<-" not in err
    # nothing to render (the one input is not audio): no empty bar, just the failure
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    assert main(["render", str(tmp_path / "bad.wav"), "-o", str(tmp_path / "bad_out.wav")]) == 1
    err = capsys.readouterr().err
    assert "total:" not in err and err.strip() == f"FAILED {tmp_path / 'bad.wav'}: file is shorter than its header"


def test_a_log_gets_a_line_per_file_and_no_bars(tmp_path, capsys):
    """stderr to a file or a pipe (capsys is neither a terminal): no carriage returns or cursor
    moves from the bars, one line per finished file, the failures and the summary."""
    (tmp_path / "in").mkdir()
    for k in range(3):
        write_audio(tmp_path / "in" / f"take{k}.wav", noisy_signal(0.5, seed=k))
    (tmp_path / "in" / "bad.wav").write_bytes(b"garbage")
    assert main(["render", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", "wiener"]) == 1
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "\x1b" not in captured.err
    assert sorted(captured.err.splitlines()) == sorted(
        [f"done {tmp_path / 'in' / f'take{k}.wav'} -> {tmp_path / 'out' / f'take{k}.wav'}" for k in range(3)] + [f"FAILED {tmp_path / 'in' / 'bad.wav'}: file is shorter than its header"]
    )
    assert captured.out.startswith("3 done, 0 skipped, 1 failed")


def test_a_file_named_like_a_pattern_is_the_file(tmp_path, capsys):
    """``take[1].wav`` exists: it is that file, not the pattern matching ``take1.wav``."""
    src = write_audio(tmp_path / "take[1].wav", noisy_signal(0.5))
    assert main(["info", str(src)]) == 0
    assert capsys.readouterr().out.startswith(f"{src}: WAV int16, 48000 Hz, 1 ch")
    assert main(["render", str(src), "-o", str(tmp_path / "out"), "--model", "wiener", "-q"]) == 0
    assert (tmp_path / "out" / "take[1].wav").is_file()
    assert main(["info", str(tmp_path / "take[2].wav")]) == 1  # no such file, and no match as a pattern either


def test_the_summary_gives_a_speed_only_for_a_second_of_audio_or_more(tmp_path, src, capsys):
    tiny = write_audio(tmp_path / "tiny.wav", noisy_signal()[:, :100])
    assert main(["render", str(tiny), "-o", str(tmp_path / "tiny_out.wav"), "-q"]) == 0
    assert "1 done" in (out := capsys.readouterr().out) and "real time" not in out  # was "0.0x real time"
    assert main(["render", str(src), "-o", str(tmp_path / "talk_out.wav"), "-q"]) == 0
    assert re.search(r"0:02 of audio in [0-9.]+ s, [0-9.]+x real time", capsys.readouterr().out)


def test_models_names_each_broken_manifest_and_why(tmp_path, capsys, monkeypatch):
    import json as _json

    from plugin_host.registry import shipped_models_dir

    (tmp_path / "cut.json").write_text('{"format_version": 1, "kind": "denoiser"')  # a half-written file
    (tmp_path / "list.json").write_text("[1, 2]")
    renamed = _json.loads((shipped_models_dir() / "wiener.json").read_text())
    (tmp_path / "my_wiener.json").write_text(_json.dumps(renamed))  # copied under another name, not edited
    monkeypatch.setenv("NOISENIL_MODEL_PATH", str(tmp_path))
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"broken manifest: {tmp_path / 'cut.json'}: not valid JSON" in lines["cut"]
    assert f"broken manifest: {tmp_path / 'list.json'}: kind None is not one of denoiser, classifier" in lines["list"]
    assert "manifest name 'wiener' does not match its file name 'my_wiener'" in lines["my_wiener"]
    assert "broken" not in lines["noisenil_fb"]  # the good ones as before


@pytest.mark.parametrize(
    "inputs, out, message",
    [
        (["a.wav", "b.wav"], "exists.wav", "is a file; 2 input files need an output folder"),
        (["a.wav", "b.wav"], "new.wav", "names an audio file, but 2 input files need an output folder"),
        (["one"], "one.flac", "names an audio file, but a folder or pattern input needs an output folder"),
        (["a.wav"], "notes.md", "is a file NoiseNil cannot write (.md); name a .aif, .aiff, .bwf, .flac, .m4a, .m4b, .mkv, .mov, .mp3, .mp4, .ogg, .opus, .wav, .webm file or a folder"),
    ],
)
def test_an_output_that_cannot_be_the_folder_it_must_be_is_refused_up_front(tmp_path, capsys, monkeypatch, inputs, out, message):
    monkeypatch.chdir(tmp_path)
    for name in ("a.wav", "b.wav", "one/c.wav"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_audio(tmp_path / name, noisy_signal(0.5))
    (tmp_path / "exists.wav").write_bytes(b"")
    (tmp_path / "notes.md").write_text("my notes")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["render", *inputs, "-o", out]) == 2
    assert capsys.readouterr().err == f"error: -o {out}: {message}\n"  # was "FAILED a.wav: File exists", or a folder named new.wav
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and (tmp_path / "notes.md").read_text() == "my notes"


def test_live_list_devices_says_when_there_are_none(capsys, monkeypatch):
    # no audio server: PortAudio finds nothing (here, JACK may be running for other tests, so that is arranged)
    import plugin_host.live

    monkeypatch.setattr(plugin_host.live, "list_devices", lambda *a: [])
    assert main(["live", "--list-devices"]) == 0
    assert capsys.readouterr().out == "no audio devices found (is an audio server running?)\n"  # was nothing at all


def test_a_dead_input_channel_is_named_and_left_out_of_a_mono_downmix(tmp_path, capsys):
    # a mic on input 1 of a two-channel interface, recorded as stereo: voice left, preamp hiss right
    voice = noisy_signal()[0]
    hiss = 1e-5 * np.random.default_rng(3).standard_normal(voice.size).astype(np.float32)
    one_sided = write_audio(tmp_path / "one_sided.wav", np.stack([voice, hiss]), bit_depth=24)
    left_only = write_audio(tmp_path / "left.wav", voice[None], bit_depth=24)
    assert main(["info", str(one_sided)]) == 0
    assert ", 2 ch (right channel silent), " in capsys.readouterr().out
    assert main(["render", str(one_sided), "-o", str(tmp_path / "kept.wav"), "-q"]) == 0
    assert "note " + str(one_sided) + ": the right channel is silent (heard in one ear): --channels 1 makes a mono file of the left channel" in capsys.readouterr().err
    assert read_audio(tmp_path / "kept.wav")[0].shape == (2, voice.size)  # kept as it came unless asked
    assert main(["render", str(one_sided), "-o", str(tmp_path / "mono.wav"), "--channels", "1", "-q"]) == 0
    assert "mono from the left channel alone (the right channel is silent)" in capsys.readouterr().err
    assert main(["render", str(left_only), "-o", str(tmp_path / "left_clean.wav"), "-q"]) == 0
    mono, reference = read_audio(tmp_path / "mono.wav")[0], read_audio(tmp_path / "left_clean.wav")[0]
    assert mono.shape == reference.shape == (1, voice.size)
    assert np.max(np.abs(mono - reference)) < 1e-4  # the voice at its own level, not averaged with the hiss (-6 dB)
    # two voices, one per side, 10 dB apart: both live, an ordinary average, no note
    two = write_audio(tmp_path / "two.wav", np.stack([voice, 0.3 * np.roll(voice, RATE // 2)]), bit_depth=24)
    assert main(["info", str(two)]) == 0
    assert ", 2 ch, " in capsys.readouterr().out
    assert main(["render", str(two), "-o", str(tmp_path / "two_mono.wav"), "--channels", "1", "-q"]) == 0
    assert "silent" not in capsys.readouterr().err
    # a four-track recorder with one input unused: named by number; MP3 cannot hold four channels
    four = write_audio(tmp_path / "four.wav", np.stack([voice, 0.5 * voice, hiss, 0.8 * voice]), bit_depth=24)
    assert main(["render", str(four), "-o", str(tmp_path / "four_clean.wav"), "-q"]) == 0
    assert "note " + str(four) + ": channel 3 is silent\n" in capsys.readouterr().err
    assert read_audio(tmp_path / "four_clean.wav")[0].shape == (4, voice.size)
    assert main(["render", str(four), "-o", str(tmp_path / "four.mp3"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {tmp_path / 'four.mp3'}: MP3 holds at most 2 channels, and this one would have 4: write WAV, or a mono downmix (--channels 1)" in err
    assert main(["render", str(four), "-o", str(tmp_path / "four_mono.wav"), "--channels", "1", "-q"]) == 0
    assert "mono from channels 1, 2 and 4 alone (channel 3 is silent)" in capsys.readouterr().err


def test_loudness_target_on_a_clip_too_short_or_too_quiet_to_measure_says_which(tmp_path, capsys):
    blip = write_audio(tmp_path / "blip.wav", 0.1 * noisy_signal(0.2))  # a 200 ms sting
    silence = write_audio(tmp_path / "room.wav", np.zeros((1, 2 * RATE), np.float32))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the K-weighting overflowed on the pipeline's empty first chunks
        assert main(["render", str(blip), str(silence), "-o", str(tmp_path / "out"), "--loudness-lufs", "-16", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"note {blip}: shorter than 0.4 s, too short to measure: loudness left unchanged" in err
    assert f"note {silence}: silent output: loudness left unchanged" in err
    y, _ = read_audio(tmp_path / "out" / "blip.wav")
    assert y.shape == (1, int(0.2 * RATE)) and np.max(np.abs(y)) < 0.2  # no gain applied


def test_a_file_named_twice_is_rendered_once_and_two_files_with_one_output_name_are_refused(tmp_path, capsys):
    raw = tmp_path / "raw"
    (raw / "guest_a").mkdir(parents=True)
    (raw / "guest_b").mkdir()
    a = write_audio(raw / "guest_a" / "take.wav", noisy_signal(1.0))
    b = write_audio(raw / "guest_b" / "take.wav", noisy_signal(1.0, seed=1))
    # overlapping globs, and the same file by two spellings: one render, no failure
    assert main(["render", str(raw / "guest_a" / "*.wav"), str(raw / "guest_a" / "t*.wav"), str(raw / "guest_a" / ".." / "guest_a" / "take.wav"), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert "1 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["take.wav"]
    assert main(["render", str(a), str(a), "-o", str(tmp_path / "one.flac"), "-q"]) == 0  # still one file to one file
    assert main(["info", str(a), str(raw / "guest_a")]) == 0
    assert capsys.readouterr().out.count("take.wav: WAV") == 1
    # two different takes that would land on one name: the second is refused, and told what to do
    assert main(["render", str(a), str(b), "-o", str(tmp_path / "flat"), "-q"]) == 1
    captured = capsys.readouterr()
    assert "1 done, 0 skipped, 1 failed" in captured.out
    assert f"FAILED {b}: output {tmp_path / 'flat' / 'take.wav'} collides with the output of {a} (name the folder above both instead: its sub-folders are kept)" in captured.err
    assert main(["render", str(raw), "-o", str(tmp_path / "kept"), "-q"]) == 0
    assert sorted(str(p.relative_to(tmp_path / "kept")) for p in (tmp_path / "kept").rglob("*.wav")) == ["guest_a/take.wav", "guest_b/take.wav"]


def test_a_rate_mp3_cannot_hold_becomes_the_nearest_it_can_and_an_asked_one_is_refused(tmp_path, capsys):
    import soxr

    x = noisy_signal(1.0)[0]
    hi = write_audio(tmp_path / "hi.wav", soxr.resample(x, RATE, 96000)[None], 96000, bit_depth=24)
    cd = write_audio(tmp_path / "cd.wav", soxr.resample(x, RATE, 88200)[None], 88200, bit_depth=24)
    low = write_audio(tmp_path / "low.wav", soxr.resample(x, RATE, 22050)[None], 22050)
    out = tmp_path / "out"
    assert main(["render", str(hi), str(cd), str(low), "-o", str(out), "--format", "mp3", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"note {hi}: 96000 Hz input written as 48000 Hz MP3 (MP3 holds at most 48000 Hz)" in err
    assert f"note {cd}: 88200 Hz input written as 44100 Hz MP3 (MP3 holds at most 48000 Hz)" in err
    assert "low.wav: " not in err  # 22.05 kHz is an MP3 rate
    from plugin_host.audio_io import probe

    for name, rate in (("hi", 48000), ("cd", 44100), ("low", 22050)):
        info = probe(out / f"{name}.mp3")  # the encoder's delay and padding left out, as a render reads it
        assert info.sample_rate == rate and abs(info.frames - rate) <= 2  # one second, resampled
    assert main(["render", str(hi), "-o", str(tmp_path / "asked.mp3"), "--sample-rate", "96000", "-q"]) == 2
    assert "error: sample rate 96000 Hz: MP3 holds 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000 Hz" in capsys.readouterr().err
    assert main(["render", str(hi), "-o", str(tmp_path / "asked.flac"), "--bit-depth", "32", "-q"]) == 2  # -o's format, as --format's
    assert "error: bit depth 32: FLAC holds 16 or 24 bits" in capsys.readouterr().err
    assert not list(tmp_path.glob("asked*"))


@pytest.mark.parametrize("name", ["zoom.m4a", "discord.opus"])
def test_an_m4a_or_opus_keeps_its_length_and_timing_generation_after_generation(tmp_path, name):
    """The M4A and Opus files NoiseNil writes record their priming (an MP4 edit list, Opus's
    pre-skip), so a cleaned file is not late against its original, however often it is cleaned."""
    pytest.importorskip("av", reason="M4A and Opus outputs need PyAV (a core dependency)")
    import soundfile as sf
    from conftest import write_av
    from plugin_host.audio_io import probe

    x = noisy_signal(2.0)
    src = tmp_path / name
    if name.endswith(".opus"):
        sf.write(str(src), x.T, RATE, format="OGG", subtype="OPUS")
    else:
        write_av(src, x)
    first = probe(src).frames
    current = src
    for generation in range(3):
        out = tmp_path / f"gen{generation}{src.suffix}"
        assert main(["render", str(current), "-o", str(out), "--model", "wiener", "-q"]) == 0
        y, rate = decoded(out)
        assert rate == RATE and y.shape[1] == first, generation
        assert lag(y[0], x[0]) == 0, generation
        current = out
    odd = write_audio(tmp_path / "odd.wav", noisy_signal(1.0)[:, :44101], 44100)  # not a whole number of codec frames or milliseconds
    assert main(["render", str(odd), "-o", str(tmp_path / f"odd{src.suffix}"), "--model", "wiener", "-q"]) == 0
    assert decoded(tmp_path / f"odd{src.suffix}")[0].shape[1] == (44101 if name.endswith(".m4a") else round(44101 * 48000 / 44100))  # Opus runs at 48 kHz


def test_a_loudness_target_holds_its_true_peak_ceiling_in_the_decoded_lossy_file(tmp_path, capsys, noisy_example):
    # low-rate AAC pushes peaks up by a dB or two: the file as players decode it must stay under the ceiling
    pytest.importorskip("av", reason="M4A outputs need PyAV (a core dependency)")
    src = write_audio(tmp_path / "take.wav", noisy_example[..., : 4 * RATE])  # espeak-ng speech in hum and hiss
    for name, extra in (("ep.m4a", ["--bitrate-kbps", "96"]), ("ep.mp3", ["--bitrate-kbps", "64"]), ("ep.opus", []), ("low.m4a", ["--bitrate-kbps", "32"])):
        assert main(["render", str(src), "-o", str(tmp_path / name), "--loudness-lufs", "-16", "--true-peak-dbtp", "-1", "-q", *extra]) == 0
        y, rate = decoded(tmp_path / name)
        meter = LoudnessMeter(rate, 1)
        meter.add(y)
        err = capsys.readouterr().err
        if name == "low.m4a" and "over the -1 dBTP ceiling" in err:  # 32 kbps AAC may overshoot whatever the limiter does: then it says so
            assert f"decoded true peak {meter.true_peak_dbtp:.1f} dBTP, over the -1 dBTP ceiling: M4A at this bit rate overshoots peaks" in err
            continue
        assert meter.true_peak_dbtp <= -0.95, (name, meter.true_peak_dbtp)
        assert abs(meter.integrated_lufs() + 16) < 0.6, (name, meter.integrated_lufs())
        if name == "ep.m4a":  # decoded at -1 dBTP it went over (+0.3 here): the limiter went lower
            assert "M4A encoding overshoots peaks: limited to -" in err


def test_the_free_space_check_counts_a_lossy_output_by_its_bit_rate(tmp_path, monkeypatch, capsys):
    # 60 s of mono: 5.8 MB as 16-bit WAV, 0.5 MB as a 64 kbps MP3; with 3 MB free the MP3 fits
    import collections
    import shutil

    take = write_audio(tmp_path / "take.wav", np.tile(noisy_signal(2.0), (1, 30)))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 3_000_000, 3_000_000))
    assert main(["render", str(take), "-o", str(tmp_path / "take.mp3"), "--bitrate-kbps", "64", "--model", "wiener", "-q"]) == 0
    assert main(["render", str(take), "-o", str(tmp_path / "take.m4a"), "--model", "wiener", "-q"]) == 0  # AAC at 64 kbps
    assert main(["render", str(take), "-o", str(tmp_path / "take_clean.wav"), "--model", "wiener", "-q"]) == 1
    assert f"FAILED {tmp_path}: not enough disk space (need about 5.8 MB, 3.0 MB free)" in capsys.readouterr().err


def test_a_full_disk_while_writing_an_m4a_or_opus_is_one_line_and_leaves_nothing(tmp_path, src):
    out = tmp_path / "o"
    out.mkdir()

    def small_disk():  # writes past 20 kB fail as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    for name in ("talk.m4a", "talk.opus"):
        r = run_cli("render", src, "-o", out / name, "--bitrate-kbps", "256", "-q", preexec_fn=small_disk)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"FAILED {out / name}: write failed, disk full? (File too large)" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert list(out.iterdir()) == []


@pytest.mark.parametrize("name, codec, audio_start", [("episode.mp4", "aac", 0), ("talk.mkv", "libopus", 0), ("late.mov", "aac", 24000)])
def test_a_video_podcast_comes_back_as_the_same_picture_with_its_sound_cleaned(tmp_path, name, codec, audio_start):
    """The picture is stream-copied packet for packet (no re-encoding, nothing lost), the sound
    replaced by the cleaned one, in sync with the picture where it was (a sound that starts half a
    second late too)."""
    av = pytest.importorskip("av", reason="videos need PyAV (a core dependency)")
    from conftest import write_av
    from plugin_host.audio_io import probe

    x = noisy_signal(2.0)
    src = write_av(tmp_path / name, x, codec=codec, video=True, audio_start=audio_start)
    assert main(["render", str(src), "-q"]) == 0
    out = tmp_path / f"{src.stem}_clean{src.suffix}"

    def streams(path):
        with av.open(str(path)) as c:
            kinds = [s.type for s in c.streams]
            pictures = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
        with av.open(str(path)) as c:
            sound = list(c.decode(c.streams.audio[0]))
        start = round(sound[0].time * RATE)
        return kinds, pictures, start, np.concatenate([f.to_ndarray().reshape(-1, f.samples)[:1] for f in sound], axis=1)[0]

    kinds_in, pictures_in, start_in, sound_in = streams(src)
    kinds_out, pictures_out, start_out, sound_out = streams(out)
    assert kinds_out == kinds_in == ["video", "audio"]
    assert len(pictures_out) == len(pictures_in) > 40 and pictures_out == pictures_in  # the picture, byte for byte
    assert probe(out).codec == {"libopus": "opus"}.get(codec, codec)
    shift = start_out + lag(sound_out, sound_in) - start_in  # where the sound plays against the picture, out minus in
    assert abs(shift) <= 2, shift
    assert pause_reduction_db(x, decoded(out)[0][:, -2 * RATE :]) > 10.0


def test_an_obs_recording_with_several_sound_tracks_keeps_them_all(tmp_path, capsys):
    """OBS records a mix and each mic on tracks of their own: the first is cleaned, the others
    are copied as they were (a WAV of the sound alone holds the first, and says so)."""
    av = pytest.importorskip("av", reason="videos need PyAV (a core dependency)")
    x = noisy_signal(2.0)
    src = tmp_path / "obs.mkv"
    with av.open(str(src), "w") as c:
        picture = c.add_stream("libx264", rate=25)
        picture.width, picture.height, picture.pix_fmt = 64, 64, "yuv420p"
        tracks = [c.add_stream("aac", rate=RATE, layout="mono") for _ in range(3)]
        for k in range(50):
            image = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 4 * k, np.uint8), format="rgb24")
            image.pts = k
            for packet in picture.encode(image):
                c.mux(packet)
        for n, track in enumerate(tracks):
            for i in range(0, x.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i : i + 1024] / (n + 1)), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = RATE, i
                for packet in track.encode(frame):
                    c.mux(packet)
        for stream in (picture, *tracks):
            for packet in stream.encode(None):
                c.mux(packet)
    assert main(["render", str(src), "-q"]) == 0
    assert f"note {src}: the first of 3 sound tracks cleaned; the other 2 copied as they were" in capsys.readouterr().err

    def packets(path, index):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams[index]) if p.size]

    out = tmp_path / "obs_clean.mkv"
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "audio", "audio"]
    for index in (0, 2, 3):  # the picture and the second and third tracks, byte for byte
        assert packets(out, index) == packets(src, index) and len(packets(src, index)) > 40
    assert packets(out, 1) != packets(src, 1)
    assert pause_reduction_db(x, decoded(out)[0][:, -2 * RATE :]) > 10.0  # the first track, cleaned (Matroska keeps AAC's priming: its tail lines up)
    assert main(["render", str(src), "-o", str(tmp_path / "obs.wav"), "-q"]) == 0
    assert "the first of 3 sound tracks cleaned; the other 2 left out (the .wav written holds one)" in capsys.readouterr().err


def test_a_clipped_recording_is_named_by_info_and_render(tmp_path, capsys):
    """A guest too hot into the interface: info and render say where it clipped, a clean take says nothing."""
    loud = np.clip(4.0 * speechlike(2.0, seed=3), -1.0, 1.0)
    hot = write_audio(tmp_path / "guest.wav", loud, bit_depth=16)
    calm = write_audio(tmp_path / "host.wav", 0.5 * speechlike(2.0, seed=3), bit_depth=16)
    from plugin_host.clipping import ClipCounter

    expected = ClipCounter(RATE)
    expected.add(read_audio(hot)[0])
    expected = expected.finish()
    assert expected.count > 10
    assert main(["info", str(hot), str(calm)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"  {expected.describe()}" and lines[2].startswith(f"{calm}: WAV")
    assert len(lines) == 3  # nothing about clipping for the calm take
    # an interface's DC offset gets a line too (the calm take has none)
    offset = write_audio(tmp_path / "usb_mic.wav", 0.3 * speechlike(2.0, seed=3) + 0.03, bit_depth=16)
    assert main(["info", str(offset)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "  DC offset -30.5 dBFS (denoising takes it out)"
    assert main(["render", str(hot), str(calm), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"note {hot}: the input {expected.describe()}: a denoiser cannot bring back what was cut off" in err
    assert "host.wav: the input clipped" not in err


def test_live_status_names_the_hum():
    from plugin_host.cli import _hum_status

    hum = "mains hum at 50.0 Hz, -41 dBFS (5 lines up to 350 Hz)"
    assert _hum_status(hum, True) == "hum 50.0 Hz notched  " and _hum_status(hum, False) == "hum 50.0 Hz (--dehum)  "
    assert _hum_status(None, True) == ""


def test_info_json_gives_the_same_figures_one_object_per_line(tmp_path, capsys):
    import json
    from pathlib import Path

    from plugin_host.clipping import ClipCounter

    hot = write_audio(tmp_path / "guest.wav", np.clip(4.0 * speechlike(2.0, seed=3), -1.0, 1.0), bit_depth=16)
    offset = write_audio(tmp_path / "usb_mic.wav", 0.3 * speechlike(2.0, seed=3) + 0.03, bit_depth=16)
    silence = write_audio(tmp_path / "silence.wav", np.zeros(RATE), bit_depth=16)
    example = Path(__file__).parents[2] / "examples" / "noisy_podcast.flac"
    assert main(["info", str(hot), str(offset), str(silence), str(example), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    guest, usb, quiet, episode = (json.loads(line) for line in lines)  # strict JSON: no -Infinity for silence
    counted = ClipCounter(RATE)
    counted.add(read_audio(hot)[0])
    counted.finish()
    assert guest["path"] == str(hot) and guest["format"] == "WAV" and guest["sample_rate"] == RATE and guest["channels"] == 1
    assert guest["clipped"]["places"] == counted.count > 10 and guest["clipped"]["first_seconds"] == pytest.approx(counted.first_seconds, abs=1e-3)
    assert guest["hum"] is None and guest["dc_offset_dbfs"] is None and usb["clipped"] is None
    assert usb["dc_offset_dbfs"] == -30.5  # as the text says: "DC offset -30.5 dBFS"
    assert quiet["loudness_lufs"] is None and quiet["peak_dbfs"] is None
    assert episode["seconds"] == pytest.approx(14.103, abs=1e-3) and episode["hum"]["mains_hz"] == 50.0
    assert [line["harmonic"] for line in episode["hum"]["lines"]] == [1, 2, 3, 5, 7]
