"""Tags, timecode and markers carried from an input to its cleaned output.

A podcaster's MP3 has its title, show, episode number, cover and chapters in ID3; a field
recorder's WAV has its timecode in ``bext`` and ``iXML`` and its markers in ``cue ``; a FLAC has
Vorbis comments and a picture. The audio changes, these do not, so ``carry`` copies them into the
finished temporary output before it is renamed into place:

- the same family of container (ID3 in MP3/WAV/AIFF, Vorbis comments in FLAC/Ogg, RIFF chunks
  WAV to WAV): everything, cover art and chapters included;
- iTunes atoms M4A/MP4 to M4A/MP4: all but the encoder's name and loudness;
- across families: the common text tags (title, artist, album, date, genre, track, ...) and the cover;
- sample positions (``bext`` time reference, ``cue `` points, ``ltxt`` lengths) are rescaled when
  the sample rate changes;
- loudness tags (ReplayGain, ID3 RVA2) are dropped: they describe the input's level, not ours.

It never fails a render: what cannot be carried becomes a note.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import struct
from pathlib import Path

from .audio_io import chunks_of, partial_path

RIFF_CARRIED = (b"bext", b"iXML", b"axml", b"cart", b"LIST", b"cue ")
RIFF_LIST_KINDS = (b"INFO", b"adtl")
MAX_CHUNK = 64 << 20  # a chunk this big is not metadata
ID3_CONTAINERS = (".mp3", ".wav", ".bwf", ".aif", ".aiff")
MP4_CONTAINERS = (".m4a", ".m4b", ".mp4", ".mov")
VORBIS_CONTAINERS = (".flac", ".ogg", ".opus")
WAV_LIKE = (".wav", ".bwf")
# RIFF INFO ids <-> the common text keys (mutagen's EasyID3 names, Vorbis comment names in lower case)
INFO_KEYS = {b"INAM": "title", b"IART": "artist", b"IPRD": "album", b"ICRD": "date", b"IGNR": "genre", b"ICMT": "comment", b"ITRK": "tracknumber", b"ICOP": "copyright", b"IENC": "encodedby", b"ILNG": "language"}
COMMON_KEYS = ("title", "artist", "album", "albumartist", "date", "genre", "comment", "tracknumber", "discnumber", "copyright", "composer", "language", "encodedby")
ID3_TEXT = {"title": "TIT2", "artist": "TPE1", "album": "TALB", "albumartist": "TPE2", "date": "TDRC", "genre": "TCON", "tracknumber": "TRCK", "discnumber": "TPOS", "copyright": "TCOP", "composer": "TCOM", "language": "TLAN", "encodedby": "TENC"}
# MP4/M4A atoms (iTunes, Zoom, voice memos) -> the common text keys
MP4_KEYS = {"\xa9nam": "title", "\xa9ART": "artist", "\xa9alb": "album", "aART": "albumartist", "\xa9day": "date", "\xa9gen": "genre", "\xa9cmt": "comment", "cprt": "copyright", "\xa9wrt": "composer", "\xa9too": "encodedby"}
LOUDNESS_TAGS = ("replaygain_", "r128_", "itunnorm")


def _loudness_tag(key: str) -> bool:
    key = key.lower().removeprefix("txxx:")
    return key.startswith(LOUDNESS_TAGS) or key.startswith("rva2")


# --------------------------------------------------------------------------- RIFF chunks
def _riff_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """(id, payload) of the chunks worth carrying in a RIFF/RF64 WAVE file, in file order."""
    out = []
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return []
        for pos, cid, n in chunks_of(f, os.fstat(f.fileno()).st_size):
            if cid in RIFF_CARRIED and n <= MAX_CHUNK:
                f.seek(pos + 8)
                payload = f.read(n)
                if len(payload) == n and (cid != b"LIST" or payload[:4] in RIFF_LIST_KINDS):
                    out.append((cid, payload))
    return out


def _rescale_riff(cid: bytes, payload: bytes, ratio: float) -> bytes:
    """A chunk with its sample positions moved to the output's sample rate."""
    if ratio == 1.0:
        return payload
    b = bytearray(payload)
    if cid == b"bext" and len(b) >= 346:
        low, high = struct.unpack_from("<II", b, 338)
        struct.pack_into("<Q", b, 338, round(((high << 32) | low) * ratio))
    elif cid == b"cue " and len(b) >= 4:
        (count,) = struct.unpack_from("<I", b, 0)
        for i in range(min(count, (len(b) - 4) // 24)):
            at = 4 + 24 * i
            position, offset = struct.unpack_from("<I", b, at + 4)[0], struct.unpack_from("<I", b, at + 20)[0]
            struct.pack_into("<I", b, at + 4, min(0xFFFFFFFF, round(position * ratio)))
            struct.pack_into("<I", b, at + 20, min(0xFFFFFFFF, round(offset * ratio)))
    elif cid == b"LIST" and b[:4] == b"adtl":
        pos = 4
        while pos + 8 <= len(b):
            sub, n = struct.unpack_from("<4sI", b, pos)
            if sub == b"ltxt" and n >= 8:
                (length,) = struct.unpack_from("<I", b, pos + 12)
                struct.pack_into("<I", b, pos + 12, min(0xFFFFFFFF, round(length * ratio)))
            pos += 8 + n + (n & 1)
    return bytes(b)


def _info_tags(chunks: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {}
    for cid, payload in chunks:
        if cid != b"LIST" or payload[:4] != b"INFO":
            continue
        pos = 4
        while pos + 8 <= len(payload):
            sub, n = struct.unpack_from("<4sI", payload, pos)
            text = payload[pos + 8 : pos + 8 + n].split(b"\0")[0].decode("utf-8", "replace").strip()
            if sub in INFO_KEYS and text:
                tags[INFO_KEYS[sub]] = [text]
            pos += 8 + n + (n & 1)
    return tags


def _info_chunk(tags: dict[str, list[str]]) -> bytes | None:
    body = b""
    for sub, key in INFO_KEYS.items():
        if tags.get(key):
            text = "; ".join(tags[key]).encode("utf-8") + b"\0"
            body += struct.pack("<4sI", sub, len(text)) + text + (b"\0" if len(text) & 1 else b"")
    return b"INFO" + body if body else None


def _insert_riff_chunks(tmp: Path, dst: Path, chunks: list[tuple[bytes, bytes]]) -> None:
    """Rewrite the WAV ``tmp`` with ``chunks`` before its data chunk (where readers that stop at
    the audio still find them), through another temporary file for ``dst``."""
    with open(tmp, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF":
            raise ValueError("an RF64 output (over 4 GB) keeps no chunks")
        size = os.fstat(f.fileno()).st_size
        pos = next((at for at, cid, _ in chunks_of(f, size) if cid == b"data"), None)
        if pos is None:
            raise ValueError("no data chunk")
        extra = b"".join(struct.pack("<4sI", cid, len(p)) + p + (b"\0" if len(p) & 1 else b"") for cid, p in chunks)
        if size + len(extra) - 8 > 0xFFFFFFFF:
            raise ValueError("the tags would take the file past 4 GB")
        new = partial_path(dst)  # a run killed here leaves what the next run's clean-up removes
        try:
            with open(new, "wb") as out:
                f.seek(0)
                out.write(b"RIFF" + struct.pack("<I", size + len(extra) - 8) + head[8:12])
                f.seek(12)
                out.write(f.read(pos - 12))
                out.write(extra)
                shutil.copyfileobj(f, out, 1 << 20)
            os.replace(new, tmp)
        finally:
            new.unlink(missing_ok=True)


# --------------------------------------------------------------------------- tags through mutagen
def _open(path: Path):
    import mutagen

    with contextlib.suppress(Exception):
        return mutagen.File(str(path))
    return None


def _common_from(tags) -> dict[str, list[str]]:
    """The common text tags of a mutagen tag object (ID3 or Vorbis comments)."""
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    out: dict[str, list[str]] = {}
    if isinstance(tags, MP4Tags):
        for atom, key in MP4_KEYS.items():
            values = [str(v) for v in tags.get(atom, []) if str(v)]
            if values:
                out[key] = values
        for atom, key in (("trkn", "tracknumber"), ("disk", "discnumber")):
            if tags.get(atom):
                number, total = tags[atom][0]
                out[key] = [f"{number}/{total}" if total else str(number)]
    elif isinstance(tags, ID3):
        for key, frame_id in ID3_TEXT.items():
            values = [str(t) for f in tags.getall(frame_id) for t in f.text if str(t)]
            if values:
                out[key] = values
        comments = [str(t) for f in tags.getall("COMM") for t in f.text if str(t)]
        if comments:
            out["comment"] = comments[:1]
    else:
        with contextlib.suppress(Exception):
            for key in COMMON_KEYS:
                values = tags.get(key) or (tags.get("description") if key == "comment" else None)
                if values:
                    out[key] = [str(v) for v in values]
    return out


def _pictures(source) -> list:
    """Cover art of a mutagen file as FLAC picture blocks: FLAC's own, Ogg's base64 comment, ID3's APIC."""
    from mutagen.flac import Picture
    from mutagen.mp4 import MP4Cover, MP4Tags

    pictures = list(getattr(source, "pictures", None) or [])
    tags = getattr(source, "tags", None)
    if pictures or tags is None:
        return pictures
    if isinstance(tags, MP4Tags):
        for cover in tags.get("covr", []):
            pic = Picture()
            pic.type, pic.mime, pic.data = 3, "image/png" if cover.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg", bytes(cover)
            pictures.append(pic)
        return pictures
    if hasattr(tags, "getall"):  # ID3
        for apic in tags.getall("APIC"):
            pic = Picture()
            pic.type, pic.mime, pic.desc, pic.data = apic.type, apic.mime, apic.desc, apic.data
            pictures.append(pic)
        return pictures
    for text in tags.get("metadata_block_picture", []) if hasattr(tags, "get") else []:
        with contextlib.suppress(Exception):
            pictures.append(Picture(base64.b64decode(text)))
    return pictures


def _write_id3(tmp: Path, src_tags, pictures: list, common: dict[str, list[str]]) -> None:
    """ID3 into an MP3, WAV or AIFF output: every frame of an ID3 source, else the common text and the cover."""
    from mutagen.id3 import APIC, COMM, ID3, TXXX, Frames

    target = _open(tmp)
    if target is None:
        raise ValueError("the output cannot be opened for tagging")
    if target.tags is None:
        target.add_tags()
    tags = target.tags
    if isinstance(src_tags, ID3):
        for frame in src_tags.values():
            if frame.FrameID == "RVA2" or (isinstance(frame, TXXX) and _loudness_tag(frame.desc)):
                continue
            tags.add(frame)
    else:
        for key, values in common.items():
            if key == "comment":
                tags.add(COMM(encoding=3, lang="eng", desc="", text=values))
            elif key in ID3_TEXT:
                tags.add(Frames[ID3_TEXT[key]](encoding=3, text=values))
        for pic in pictures:
            tags.add(APIC(encoding=3, mime=pic.mime, type=pic.type, desc=pic.desc, data=pic.data))
    target.save()


def _write_vorbis(tmp: Path, src_tags, pictures: list, common: dict[str, list[str]]) -> None:
    """Vorbis comments into a FLAC or Ogg output: every comment of a FLAC/Ogg/Opus source, else
    the common text; the cover as a FLAC picture block (or Ogg's base64 comment)."""
    from mutagen._vorbis import VComment

    target = _open(tmp)
    if target is None:
        raise ValueError("the output cannot be opened for tagging")
    if target.tags is None:
        target.add_tags()
    if isinstance(src_tags, VComment):  # Vorbis comments (FLAC, Ogg, Opus): all of them
        for key in src_tags.keys():  # noqa: SIM118 - a mutagen tag object, not a dict
            if not _loudness_tag(key) and key.lower() != "metadata_block_picture":
                target.tags[key] = src_tags[key]
    else:
        for key, values in common.items():
            target.tags[key] = values
    if pictures:
        if hasattr(target, "add_picture"):  # FLAC: picture blocks
            for pic in pictures:
                target.add_picture(pic)
        else:  # Ogg: the same block, base64, as a comment
            target.tags["metadata_block_picture"] = [base64.b64encode(p.write()).decode("ascii") for p in pictures]
    target.save()


def _write_mp4(tmp: Path, src_tags, pictures: list, common: dict[str, list[str]]) -> None:
    """iTunes atoms into an M4A output: every atom of an MP4 source (not its encoder's name, which
    the output has its own of, nor its loudness), else the common text, track and disc numbers and the cover."""
    from mutagen.mp4 import MP4, MP4Cover, MP4Tags

    target = MP4(str(tmp))
    if target.tags is None:
        target.add_tags()
    if isinstance(src_tags, MP4Tags):
        for atom, value in src_tags.items():
            if atom != "\xa9too" and not _loudness_tag(atom.rsplit(":", 1)[-1]):
                target.tags[atom] = value
    else:
        atoms = {key: atom for atom, key in MP4_KEYS.items() if atom != "\xa9too"}
        for key, values in common.items():
            if key in atoms:
                target.tags[atoms[key]] = values
            elif key in ("tracknumber", "discnumber"):
                with contextlib.suppress(ValueError):
                    number, _, total = values[0].partition("/")
                    target.tags["trkn" if key == "tracknumber" else "disk"] = [(int(number), int(total or 0))]
        if pictures:
            target.tags["covr"] = [MP4Cover(p.data, MP4Cover.FORMAT_PNG if p.mime == "image/png" else MP4Cover.FORMAT_JPEG) for p in pictures]
    target.save()


# --------------------------------------------------------------------------- what a file carries
def _timecode(samples: int, sample_rate: int) -> str:
    seconds, rest = divmod(samples, sample_rate)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h:02d}:{m:02d}:{s:02d}.{1000 * rest // sample_rate:03d}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def describe(path: str | os.PathLike, sample_rate: int) -> str:
    """One line of what ``carry`` would take from ``path`` ("" when nothing): title, artist, the
    number of other tags, cover, chapters, bext timecode, markers. For ``noisenil info``."""
    try:
        chunks, tags, pictures, common = _read(Path(path))
        parts = [f"{key} {common[key][0]!r}" for key in ("title", "artist", "album") if common.get(key)]
        pictures_and_chapters = ("APIC", "CHAP", "CTOC", "covr", "metadata_block_picture")
        text = [k for k in tags.keys() if not k.startswith(pictures_and_chapters)] if tags is not None else list(common)  # noqa: SIM118 - mutagen's
        if len(text) > len(parts):
            parts.append(_count(len(text) - len(parts), "other tag"))
        if pictures:
            parts.append("cover")
        chapters = len(tags.getall("CHAP")) if tags is not None and hasattr(tags, "getall") else 0
        if chapters:
            parts.append(_count(chapters, "chapter"))
        for cid, payload in chunks:
            if cid == b"bext" and len(payload) >= 346:
                parts.append(f"timecode {_timecode(struct.unpack_from('<Q', payload, 338)[0], sample_rate)} (bext)")
            elif cid == b"cue " and len(payload) >= 4:
                parts.append(_count(struct.unpack_from("<I", payload)[0], "marker"))
            elif cid == b"iXML":
                parts.append("iXML")
        return ", ".join(parts)
    except Exception:  # noqa: BLE001 - a description is never worth an error
        return ""


# --------------------------------------------------------------------------- the entry point
def carry(src: str | os.PathLike, tmp: str | os.PathLike, dst: str | os.PathLike, ratio: float = 1.0) -> list[str]:
    """Copy what ``src`` says about itself into the finished temporary output ``tmp`` (to be
    renamed ``dst``); ``ratio`` is output rate / input rate. Returns notes; never raises."""
    src, tmp, dst = Path(src), Path(tmp), Path(dst)
    try:
        return _carry(src, tmp, dst, ratio)
    except Exception as exc:  # noqa: BLE001 - a tag problem must never cost the user the render
        return [f"tags not carried ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})"]


def _read(src: Path):
    """What ``src`` says about itself: (RIFF chunks worth carrying, its tags through mutagen or
    None when it has none, its cover pictures, the common text tags)."""
    chunks = _riff_chunks(src) if src.suffix.lower() in WAV_LIKE else []
    source = _open(src)
    tags = getattr(source, "tags", None)
    pictures = _pictures(source) if source is not None else []
    if tags is not None and not len(tags.keys()) and not pictures:
        tags = None
    common = _info_tags(chunks)
    if tags is not None:
        common.update(_common_from(tags))
    return chunks, tags, pictures, {k: v for k, v in common.items() if v and any(v)}


def _carry(src: Path, tmp: Path, dst: Path, ratio: float) -> list[str]:
    notes: list[str] = []
    dst_suffix = dst.suffix.lower()
    chunks, src_tags, pictures, common = _read(src)
    riff_extra = [c for c in chunks if not (c[0] == b"LIST" and c[1][:4] == b"INFO")]
    if not (common or src_tags is not None or riff_extra or pictures):
        return notes
    if dst_suffix in WAV_LIKE:
        carried = [(cid, _rescale_riff(cid, p, ratio)) for cid, p in chunks]
        if not any(cid == b"LIST" and p[:4] == b"INFO" for cid, p in carried):
            info = _info_chunk(common)
            if info:
                carried.append((b"LIST", info))
        if carried:
            try:
                _insert_riff_chunks(tmp, dst, carried)
            except ValueError as exc:
                notes.append(f"timecode, markers and tags not carried: {exc}")
                return notes
        from mutagen.id3 import ID3

        if isinstance(src_tags, ID3) or pictures:  # all of an ID3 source; another's cover
            _write_id3(tmp, src_tags, pictures, common)
        return notes
    dropped = sorted({cid.decode().strip() for cid, _ in riff_extra if cid in (b"bext", b"iXML", b"cue ")})
    if dropped:
        notes.append(f"{', '.join(dropped)} (timecode, markers) not carried: {dst_suffix} files cannot hold them")
    if dst_suffix in ID3_CONTAINERS:
        _write_id3(tmp, src_tags, pictures, common)
    elif dst_suffix in VORBIS_CONTAINERS:
        _write_vorbis(tmp, src_tags, pictures, common)
    elif dst_suffix in MP4_CONTAINERS:
        _write_mp4(tmp, src_tags, pictures, common)
    return notes
