"""Lossy outputs keep their input's bit rate, or take the one asked for (plugin_host/bitrate.py)."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import read_audio, speechlike

from plugin_host.audio_io import probe
from plugin_host.bitrate import OGG_STEPS, ogg_nominal_kbps, output_quality, source_kbps
from plugin_host.cli import main
from plugin_host.errors import ParameterError
from plugin_host.render import RenderOptions, render_file

RATE = 48000
mutagen = pytest.importorskip("mutagen")


def noisy(seconds=6.0, channels=1):
    x = speechlike(seconds) + 0.02 * np.random.default_rng(1).standard_normal(int(seconds * RATE)).astype(np.float32)
    return np.tile(x, (channels, 1))


def encode(path, x, quality, sample_rate=RATE) -> Path:
    from pedalboard.io import AudioFile

    with AudioFile(str(path), "w", sample_rate, x.shape[0], quality=quality) as f:
        f.write(x)
    return Path(path)


def kbps(path) -> float:
    return mutagen.File(path).info.bitrate / 1000


def test_mp3_rates_round_up_to_one_the_format_offers_and_cap_at_what_the_sample_rate_holds():
    mp3 = Path("x.mp3")
    assert output_quality(mp3, 48000, 1, 64.0) == ("64 kbps", None)
    assert output_quality(mp3, 48000, 1, 62.9) == ("64 kbps", None)  # a measured CBR file, within 2 %
    assert output_quality(mp3, 48000, 2, 90.6) == ("96 kbps", None)  # a VBR file's average
    assert output_quality(mp3, 48000, 1, None) == (None, None)  # nothing to keep: the encoder's best
    assert output_quality(mp3, 48000, 1, 64.0, wanted_kbps=100) == ("112 kbps", "100 kbps is not an MP3 rate: written at 112 kbps")
    assert output_quality(mp3, 16000, 1, 320.0) == ("160 kbps", "MP3 at 16000 Hz holds at most 160 kbps: written at 160 kbps")
    assert output_quality(mp3, 8000, 1, None, wanted_kbps=128) == ("64 kbps", "MP3 at 8000 Hz holds at most 64 kbps: written at 64 kbps")
    assert output_quality(Path("x.flac"), 48000, 1, None, wanted_kbps=64) == (None, "bit rate 64 kbps not used: FLAC is lossless")
    assert output_quality(Path("x.wav"), 48000, 1, 64.0) == (None, None)


def test_aac_and_opus_take_any_rate_in_their_range_and_a_speech_default_per_channel():
    assert output_quality(Path("x.m4a"), 48000, 1, None) == ("64 kbps", None)  # a WAV made into an M4A
    assert output_quality(Path("x.m4a"), 44100, 2, 69.4) == ("69 kbps", None)  # a phone's M4A keeps its rate
    assert output_quality(Path("x.opus"), 48000, 2, None) == ("96 kbps", None)
    assert output_quality(Path("x.opus"), 48000, 1, None, wanted_kbps=4) == ("6 kbps", "Opus holds 6-510 kbps: written at 6 kbps")
    assert output_quality(Path("x.alac"), 48000, 1, None, wanted_kbps=64) == (None, "bit rate 64 kbps not used: ALAC is lossless")


def test_ogg_steps_are_chosen_by_the_nominal_rate_of_the_output_layout():
    mono, stereo = ogg_nominal_kbps(48000, 1), ogg_nominal_kbps(48000, 2)
    assert list(stereo[:10]) == [64, 80, 96, 112, 128, 160, 192, 224, 256, 320]  # the steps are named by stereo rates
    assert all(a < b for a, b in itertools.pairwise(mono)) and 80 <= mono[4] <= 95  # a mono "128 kbps" is ~86
    quality, note = output_quality(Path("x.ogg"), 48000, 1, 61.0)
    i = OGG_STEPS.index(int(quality.split()[0]))
    assert mono[i] >= 61 * 0.98 > mono[i - 1] and note is None  # the first step whose mono rate holds 61 kbps
    assert output_quality(Path("x.ogg"), 48000, 1, 1000.0)[1].startswith("Ogg Vorbis at 48000 Hz, 1 ch holds at most")


def test_a_cleaned_mp3_keeps_its_bit_rate_not_the_encoders_320(tmp_path):
    src = encode(tmp_path / "episode.mp3", noisy(), "64 kbps")
    assert source_kbps(probe(src)) == pytest.approx(64.0)
    result = render_file(src, tmp_path / "clean.mp3")
    assert kbps(tmp_path / "clean.mp3") == 64.0 and not result.notes
    size_in, size_out = src.stat().st_size, (tmp_path / "clean.mp3").stat().st_size
    assert abs(size_out / size_in - 1) < 0.03  # the same size, not five times it
    assert read_audio(tmp_path / "clean.mp3")[0].shape == read_audio(src)[0].shape
    vbr = encode(tmp_path / "vbr.mp3", noisy(channels=2), "V2")
    average = source_kbps(probe(vbr))
    render_file(vbr, tmp_path / "vbr_clean.mp3")
    assert average <= kbps(tmp_path / "vbr_clean.mp3") <= average * 1.3  # the next constant rate up


def test_loudness_normalised_and_resampled_outputs_keep_it_too(tmp_path):
    src = encode(tmp_path / "episode.mp3", noisy(), "96 kbps")
    render_file(src, tmp_path / "loud.mp3", RenderOptions(loudness_lufs=-16))
    assert kbps(tmp_path / "loud.mp3") == 96.0
    result = render_file(src, tmp_path / "low.mp3", RenderOptions(sample_rate=16000, bitrate_kbps=192))
    assert kbps(tmp_path / "low.mp3") == 160.0 and result.notes == ["MP3 at 16000 Hz holds at most 160 kbps: written at 160 kbps"]


def test_opus_and_vorbis_inputs_keep_their_rate_in_ogg_and_a_cover_does_not_count(tmp_path):
    import base64

    import soundfile as sf
    from mutagen.flac import Picture
    from mutagen.oggopus import OggOpus

    x = noisy()
    src = tmp_path / "discord.opus"
    sf.write(str(src), x.T, RATE, format="OGG", subtype="OPUS")
    before = source_kbps(probe(src))
    assert 20 < before < 200
    tags = OggOpus(src)
    pic = Picture()
    pic.type, pic.mime, pic.data = 3, "image/png", b"\x89PNG" + bytes(300_000)  # 300 kB: 400 kbps over 6 s if it counted
    tags["metadata_block_picture"] = [base64.b64encode(pic.write()).decode("ascii")]
    tags.save()
    assert source_kbps(probe(src)) == pytest.approx(before, rel=0.01)
    for name in ("clean.opus", "clean.ogg"):  # Opus stays Opus, in an .ogg too (as Craig writes it)
        result = render_file(src, tmp_path / name)
        assert sf.info(str(tmp_path / name)).subtype == "OPUS" and not result.notes
        assert source_kbps(probe(tmp_path / name)) == pytest.approx(before, rel=0.3)  # asked for the input's rate (Opus is VBR)
    mp3 = encode(tmp_path / "talk.mp3", x, "64 kbps")  # Vorbis from another lossy format: the first step whose nominal rate holds it
    render_file(mp3, tmp_path / "talk.ogg")
    assert kbps(tmp_path / "talk.ogg") == min(k for k in ogg_nominal_kbps(RATE, 1) if k >= 64 * 0.98)
    vorbis = encode(tmp_path / "talk.ogg", x, "160 kbps")
    render_file(vorbis, tmp_path / "talk_clean.ogg")
    assert kbps(tmp_path / "talk_clean.ogg") <= kbps(vorbis)  # never above the input's nominal rate


def test_cli_bitrate_option_info_line_and_bad_values(tmp_path, capsys):
    from conftest import write_audio

    wav = write_audio(tmp_path / "take.wav", noisy())
    assert main(["render", str(wav), "-o", str(tmp_path / "best.mp3"), "-q"]) == 0
    assert kbps(tmp_path / "best.mp3") == 320.0  # a lossless input has no rate to keep: the encoder's best
    assert main(["render", str(wav), "-o", str(tmp_path / "small.mp3"), "--bitrate-kbps", "64", "-q"]) == 0
    assert kbps(tmp_path / "small.mp3") == 64.0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "small.mp3")]) == 0
    assert ", 1 ch, 64 kbps, 0:06" in capsys.readouterr().out
    with pytest.raises(ParameterError, match=r"bitrate_kbps must be in \[8, 500\], got 1000"):
        RenderOptions(bitrate_kbps=1000).build()
    assert main(["render", str(wav), "-o", str(tmp_path / "bad.mp3"), "--bitrate-kbps", "1000", "-q"]) == 2
    assert "bitrate_kbps must be in [8, 500], got 1000" in capsys.readouterr().err
    assert not (tmp_path / "bad.mp3").exists()
