"""render carries an input's tags, cover, chapters, timecode and markers into its output."""

import base64
import struct

import numpy as np
import pytest
import soundfile as sf
from conftest import read_audio

mutagen = pytest.importorskip("mutagen", reason="tags need mutagen (a core dependency)")
from mutagen.flac import FLAC, Picture  # noqa: E402
from mutagen.id3 import APIC, CHAP, COMM, CTOC, TALB, TIT2, TPE1, TRCK, TXXX, CTOCFlags  # noqa: E402
from pedalboard.io import AudioFile  # noqa: E402

from plugin_host.cli import main  # noqa: E402
from plugin_host.metadata import carry  # noqa: E402

RATE = 48000
HOUR = 3600 * RATE  # a timecode of 01:00:00:00, in samples since midnight


def noisy(seconds=2.0, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0) + 0.02 * rng.standard_normal(t.size)
    return np.tile(x.astype(np.float32), (channels, 1))


def chunk(cid: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", cid, len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def bext(time_reference: int) -> bytes:
    b = bytearray(602)
    b[0:12] = b"Studio A mic"
    b[256:264] = b"ZoomF6\0\0"
    b[320:330] = b"2026-12-01"
    b[330:338] = b"10:00:00"
    struct.pack_into("<QH", b, 338, time_reference, 1)
    return bytes(b) + b"A=PCM,F=48000,W=16,M=mono,T=ZoomF6\r\n"


def cue_and_labels(points: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """'cue ' with (id, sample) points, and a LIST adtl with a label and a 1 s region for each."""
    cue = struct.pack("<I", len(points)) + b"".join(struct.pack("<II4sIII", i, s, b"data", 0, 0, s) for i, s in points)
    adtl = b"adtl"
    for i, _ in points:
        adtl += chunk(b"labl", struct.pack("<I", i) + f"marker {i}\0".encode())
        adtl += chunk(b"ltxt", struct.pack("<II4sHHHH", i, RATE, b"rgn ", 0, 0, 0, 0))
    return cue, adtl


def info(**tags) -> bytes:
    ids = {"title": b"INAM", "artist": b"IART", "album": b"IPRD", "comment": b"ICMT"}
    return b"INFO" + b"".join(chunk(ids[k], v.encode() + b"\0") for k, v in tags.items())


def field_recorder_wav(path, x: np.ndarray) -> None:
    """A BWF as a field recorder writes it: bext timecode, iXML, markers, INFO, then 16-bit data."""
    pcm = (np.clip(x[0], -1, 1) * 32767).astype("<i2").tobytes()
    cue, adtl = cue_and_labels([(1, RATE // 2), (2, RATE + 4800)])
    ixml = b"<BWFXML><TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO>172800000</TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO><TIMESTAMP_SAMPLE_RATE>48000</TIMESTAMP_SAMPLE_RATE></BWFXML>"
    body = (
        chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16))
        + chunk(b"bext", bext(HOUR))
        + chunk(b"iXML", ixml)
        + chunk(b"cue ", cue)
        + chunk(b"LIST", adtl)
        + chunk(b"LIST", info(title="Interview take 3", artist="Jane Host"))
        + chunk(b"data", pcm)
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)


def riff(path) -> list[tuple[bytes, bytes]]:
    b = path.read_bytes()
    assert b[:4] == b"RIFF" and struct.unpack("<I", b[4:8])[0] == len(b) - 8
    out, i = [], 12
    while i + 8 <= len(b):
        cid, n = struct.unpack("<4sI", b[i : i + 8])
        out.append((cid, b[i + 8 : i + 8 + n]))
        i += 8 + n + (n & 1)
    assert i == len(b)
    return out


def payload(chunks, cid, kind=None):
    found = [p for c, p in chunks if c == cid and (kind is None or p[:4] == kind)]
    assert len(found) == 1, (cid, [c for c, _ in chunks])
    return found[0]


def tagged_mp3(path) -> None:
    with AudioFile(str(path), "w", RATE, 1) as f:
        f.write(noisy())
    m = mutagen.File(path)
    m.add_tags()
    m.tags.add(TIT2(encoding=3, text=["Episode 12: Noise"]))
    m.tags.add(TPE1(encoding=3, text=["Jane Host"]))
    m.tags.add(TALB(encoding=3, text=["The Show"]))
    m.tags.add(TRCK(encoding=3, text=["12"]))
    m.tags.add(COMM(encoding=3, lang="eng", desc="", text=["show notes"]))
    m.tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=b"\x89PNG cover bytes"))
    m.tags.add(CHAP(element_id="ch0", start_time=0, end_time=1000, sub_frames=[TIT2(encoding=3, text=["Intro"])]))
    m.tags.add(CHAP(element_id="ch1", start_time=1000, end_time=2000, sub_frames=[TIT2(encoding=3, text=["Talk"])]))
    m.tags.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=["ch0", "ch1"], sub_frames=[]))
    m.tags.add(TXXX(encoding=3, desc="REPLAYGAIN_TRACK_GAIN", text=["-3.1 dB"]))
    m.save()


def test_an_mp3_keeps_its_tags_cover_and_chapters_and_drops_its_loudness_tag(tmp_path, capsys):
    src = tmp_path / "ep12.mp3"
    tagged_mp3(src)
    assert main(["render", str(src), "-q"]) == 0
    tags = mutagen.File(tmp_path / "ep12_clean.mp3").tags
    assert str(tags["TIT2"]) == "Episode 12: Noise" and str(tags["TALB"]) == "The Show" and str(tags["TRCK"]) == "12"
    assert tags["APIC:cover"].data == b"\x89PNG cover bytes" and str(tags["COMM::eng"]) == "show notes"
    assert sorted((c.element_id, c.start_time, c.end_time, str(c.sub_frames["TIT2"])) for c in tags.getall("CHAP")) == [("ch0", 0, 1000, "Intro"), ("ch1", 1000, 2000, "Talk")]
    assert tags["CTOC:toc"].child_element_ids == ["ch0", "ch1"]
    assert not tags.getall("TXXX")  # the input's ReplayGain would be wrong for the cleaned file
    x, _ = read_audio(src)
    y, _ = read_audio(tmp_path / "ep12_clean.mp3")
    assert abs(y.shape[1] - x.shape[1]) <= 2 * 1152  # the audio is the render's, tags did not disturb it
    assert "tags not carried" not in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["flac", "ogg", "wav"])
def test_an_mp3s_text_tags_and_cover_go_into_other_formats(tmp_path, fmt):
    src = tmp_path / "ep12.mp3"
    tagged_mp3(src)
    assert main(["render", str(src), "--format", fmt, "-q"]) == 0
    out = tmp_path / f"ep12_clean.{fmt}"
    m = mutagen.File(out)
    if fmt == "wav":  # ID3 in its own chunk (everything), and the text in RIFF INFO for readers that know only that
        assert str(m.tags["TIT2"]) == "Episode 12: Noise" and len(m.tags.getall("CHAP")) == 2
        info_chunk = payload(riff(out), b"LIST", b"INFO")
        assert b"INAM\x12\x00\x00\x00Episode 12: Noise\x00" in info_chunk and b"IARTJ"[:4] in info_chunk
        assert sf.info(str(out)).subtype == "PCM_24"  # a lossy input's default depth: 24 bits, not 32-bit float
        return
    assert m.tags["title"] == ["Episode 12: Noise"] and m.tags["artist"] == ["Jane Host"] and m.tags["tracknumber"] == ["12"] and m.tags["comment"] == ["show notes"]
    pictures = m.pictures if fmt == "flac" else [Picture(base64.b64decode(m.tags["metadata_block_picture"][0]))]
    assert [(p.type, p.mime, p.data) for p in pictures] == [(3, "image/png", b"\x89PNG cover bytes")]
    if fmt == "flac":
        assert m.info.bits_per_sample == 24


def test_a_field_recorders_timecode_markers_and_notes_survive(tmp_path, capsys):
    src = tmp_path / "take3.wav"
    field_recorder_wav(src, noisy(3.0))
    assert main(["render", str(src), "-q"]) == 0
    out = tmp_path / "take3_clean.wav"
    before, after = riff(src), riff(out)
    ids = [c for c, _ in after]
    assert ids.index(b"bext") < ids.index(b"data") and ids.index(b"cue ") < ids.index(b"data")  # before the audio, where every reader looks
    for cid, kind in [(b"bext", None), (b"iXML", None), (b"cue ", None), (b"LIST", b"adtl"), (b"LIST", b"INFO")]:
        assert payload(after, cid, kind) == payload(before, cid, kind)
    y, rate = read_audio(out)
    assert rate == RATE and y.shape == (1, 3 * RATE)
    assert np.abs(y).max() > 0.1
    assert "not carried" not in capsys.readouterr().err
    # the loudness passes write the output last: the chunks go there too
    assert main(["render", str(src), "-o", str(tmp_path / "loud.wav"), "--loudness-lufs", "-20", "-q"]) == 0
    assert payload(riff(tmp_path / "loud.wav"), b"bext") == payload(before, b"bext")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_new_sample_rate_moves_the_timecode_and_markers_with_it(tmp_path):
    src = tmp_path / "take3.wav"
    field_recorder_wav(src, noisy(3.0))
    assert main(["render", str(src), "-o", str(tmp_path / "out.wav"), "--sample-rate", "44100", "-q"]) == 0
    after = riff(tmp_path / "out.wav")
    assert struct.unpack_from("<Q", payload(after, b"bext"), 338)[0] == 3600 * 44100  # still 01:00:00:00
    cue = payload(after, b"cue ")
    assert [struct.unpack_from("<I", cue, 4 + 24 * i + 20)[0] for i in range(2)] == [22050, 44100 + 4410]  # 0.5 s and 1.1 s
    assert [struct.unpack_from("<I", cue, 4 + 24 * i + 4)[0] for i in range(2)] == [22050, 44100 + 4410]
    adtl = payload(after, b"LIST", b"adtl")
    assert adtl.count(struct.pack("<II", 1, 44100)) == 1 and adtl.count(struct.pack("<II", 2, 44100)) == 1  # the 1 s regions
    assert payload(after, b"iXML") == payload(riff(src), b"iXML")  # iXML carries its own sample rate
    assert sf.info(str(tmp_path / "out.wav")).samplerate == 44100


def test_timecode_that_a_format_cannot_hold_is_a_note_and_the_text_still_goes(tmp_path, capsys):
    src = tmp_path / "take3.wav"
    field_recorder_wav(src, noisy(1.0))
    assert main(["render", str(src), "--format", "flac"]) == 0
    err = capsys.readouterr().err
    assert "note " in err and "bext, cue, iXML (timecode, markers) not carried: .flac files cannot hold them" in err
    m = FLAC(tmp_path / "take3_clean.flac")
    assert m.tags["title"] == ["Interview take 3"] and m.tags["artist"] == ["Jane Host"]


def test_flac_comments_and_picture_are_kept_and_replaygain_is_dropped(tmp_path):
    src = tmp_path / "ep.flac"
    sf.write(str(src), noisy().T, RATE, subtype="PCM_16")
    m = FLAC(src)
    m["title"], m["artist"], m["replaygain_track_gain"], m["podcast_guid"] = "Ep 4", "Jane", "-2.0 dB", "abc-123"
    pic = Picture()
    pic.type, pic.mime, pic.data = 3, "image/jpeg", b"\xff\xd8jpeg"
    m.add_picture(pic)
    m.save()
    assert main(["render", str(src), "-q"]) == 0
    out = FLAC(tmp_path / "ep_clean.flac")
    assert out["title"] == ["Ep 4"] and out["podcast_guid"] == ["abc-123"] and "replaygain_track_gain" not in out
    assert [(p.type, p.data) for p in out.pictures] == [(3, b"\xff\xd8jpeg")]
    assert out.info.bits_per_sample == 16
    assert main(["render", str(src), "--format", "mp3", "-q"]) == 0  # for the podcast feed: text and cover as ID3
    tags = mutagen.File(tmp_path / "ep_clean.mp3").tags
    assert str(tags["TIT2"]) == "Ep 4" and str(tags["TPE1"]) == "Jane" and not tags.getall("TXXX")
    assert [(a.type, a.mime, a.data) for a in tags.getall("APIC")] == [(3, "image/jpeg", b"\xff\xd8jpeg")]


def test_opus_tags_go_into_the_opus_and_ogg_vorbis_outputs(tmp_path):
    src = tmp_path / "call.opus"
    sf.write(str(src), noisy().T, RATE, format="OGG", subtype="OPUS")
    m = mutagen.File(src)
    m["title"], m["r128_track_gain"] = "Discord call", "-512"
    m.save()
    assert main(["render", str(src), "-q"]) == 0
    out = mutagen.File(tmp_path / "call_clean.opus")
    assert type(out).__name__ == "OggOpus" and out["title"] == ["Discord call"] and "r128_track_gain" not in out
    assert main(["render", str(src), "--format", "flac", "-q"]) == 0
    out = mutagen.File(tmp_path / "call_clean.flac")
    assert out["title"] == ["Discord call"] and "r128_track_gain" not in out


def test_untagged_inputs_get_no_tags_and_broken_tags_never_fail_a_render(tmp_path, capsys):
    plain = tmp_path / "plain.mp3"
    with AudioFile(str(plain), "w", RATE, 1) as f:
        f.write(noisy())
    assert main(["render", str(plain), "-q"]) == 0
    assert mutagen.File(tmp_path / "plain_clean.mp3").tags is None
    # an ID3 header that promises more than the file holds
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3\x04\x00\x00\x00\x00\x7f\x7fTIT2" + plain.read_bytes())
    assert main(["render", str(broken), "-q"]) == 0
    assert (tmp_path / "broken_clean.mp3").stat().st_size > 1000
    src = tmp_path / "vanished.wav"  # gone between the render and its tags: a note, never an exception
    assert carry(src, tmp_path / "plain_clean.mp3", tmp_path / "x.mp3") == [f"tags not carried (FileNotFoundError: [Errno 2] No such file or directory: '{src}')"]


def test_a_zoom_or_phone_m4as_tags_and_cover_go_into_its_m4a_wav_and_flac(tmp_path):
    pytest.importorskip("av", reason="M4A needs PyAV (a core dependency)")
    from conftest import write_av
    from mutagen.mp4 import MP4, MP4Cover

    src = write_av(tmp_path / "memo.m4a", noisy())
    m = MP4(src)
    m["\xa9nam"], m["\xa9ART"], m["trkn"] = ["Guest interview"], ["Sam Guest"], [(3, 10)]
    m["covr"] = [MP4Cover(b"\x89PNG m4a cover", imageformat=MP4Cover.FORMAT_PNG)]
    m["----:com.apple.iTunes:iTunNORM"] = [b" 00000A00 00000A00"]  # Apple's loudness: it measured the input
    m.save()
    assert main(["render", str(src), "-q"]) == 0
    back = MP4(tmp_path / "memo_clean.m4a")  # M4A to M4A: every atom but the loudness
    assert back["\xa9nam"] == ["Guest interview"] and back["trkn"] == [(3, 10)] and bytes(back["covr"][0]) == b"\x89PNG m4a cover"
    assert "----:com.apple.iTunes:iTunNORM" not in back
    assert main(["render", str(src), "--format", "wav", "-q"]) == 0
    out = tmp_path / "memo_clean.wav"
    assert b"INAM\x10\x00\x00\x00Guest interview\x00" in payload(riff(out), b"LIST", b"INFO")
    tags = mutagen.File(out).tags
    assert str(tags["TIT2"]) == "Guest interview" and str(tags["TRCK"]) == "3/10" and tags.getall("APIC")[0].data == b"\x89PNG m4a cover"
    assert main(["render", str(src), "--format", "flac", "-q"]) == 0
    flac = FLAC(tmp_path / "memo_clean.flac")
    assert flac["artist"] == ["Sam Guest"] and flac["tracknumber"] == ["3/10"] and flac.pictures[0].mime == "image/png"


def test_info_says_what_a_file_carries(tmp_path, capsys):
    wav, mp3, plain = tmp_path / "take3.wav", tmp_path / "ep12.mp3", tmp_path / "plain.flac"
    field_recorder_wav(wav, noisy(1.0))
    tagged_mp3(mp3)
    sf.write(str(plain), noisy().T, RATE)
    assert main(["info", str(wav), str(mp3), str(plain)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  tags: title 'Interview take 3', artist 'Jane Host', timecode 01:00:00.000 (bext), iXML, 2 markers"
    assert lines[3] == "  tags: title 'Episode 12: Noise', artist 'Jane Host', album 'The Show', 3 other tags, cover, 2 chapters"
    assert len(lines) == 5 and lines[4].startswith(f"{plain}: FLAC")  # nothing to say: no line


def test_an_mp3s_tags_and_cover_go_into_an_m4a_made_for_publishing(tmp_path):
    from mutagen.mp4 import MP4

    mp3 = tmp_path / "ep12.mp3"
    tagged_mp3(mp3)
    assert main(["render", str(mp3), "-o", str(tmp_path / "ep12.m4a"), "-q"]) == 0
    m = MP4(tmp_path / "ep12.m4a")
    assert m["\xa9nam"] == ["Episode 12: Noise"] and m["\xa9alb"] == ["The Show"] and m["\xa9cmt"] == ["show notes"]
    assert m["trkn"] == [(12, 0)] and bytes(m["covr"][0]) == b"\x89PNG cover bytes"
    assert m.info.codec.startswith("mp4a")  # AAC
