#!/usr/bin/env bash
# Smoke test of the built bundle (run installers/build.sh first). Exit 0 only if:
#  - the frozen GUI starts offscreen, renders the bundled example and writes its --screenshot PNG,
#  - the frozen CLI renders a file and the output has the input's length, reads and writes Ogg Opus
#    (its title carried into the output), M4A and an MP4 video (the picture copied),
#  - the bundled PortAudio (not the system's) is what sounddevice loads,
#  - no log mentions an import error or a traceback.
# Prints the bundle size and the start-up times.
set -euo pipefail
cd "$(dirname "$0")/.."
app=${1:-dist/NoiseNil.AppDir}
[ -x "$app/noisenil-gui" ] || { echo "FAIL: no bundle at $app (run installers/build.sh)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export QT_QPA_PLATFORM=offscreen NOISENIL_CONFIG_DIR="$work/config" NOISENIL_HOME="$work/home"
example="$app/_internal/examples/noisy_podcast.flac"
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
now() { date +%s%N; }
ms() { echo "$(( ($2 - $1) / 1000000 ))"; }

t0=$(now); "$app/noisenil" --version > "$work/cli-version.log" 2>&1 || fail "noisenil --version"; t1=$(now)
cli_start=$(ms "$t0" "$t1")
t0=$(now); "$app/noisenil-gui" --screenshot "$work/empty.png" > "$work/gui-start.log" 2>&1 || fail "GUI start"; t1=$(now)
gui_start=$(( $(ms "$t0" "$t1") - 500 ))  # --screenshot with no files waits 0.5 s before shooting

"$app/noisenil-gui" "$example" --screenshot "$work/shot.png" > "$work/gui.log" 2>&1 || fail "GUI --screenshot"
head -c 8 "$work/shot.png" | od -An -c | grep -q "P   N   G" || fail "screenshot is not a PNG"
[ "$(stat -c %s "$work/shot.png")" -gt 50000 ] || fail "screenshot suspiciously small"

"$app/noisenil" render "$example" -o "$work/clean.wav" -q > "$work/render.log" 2>&1 || fail "CLI render"
"$app/noisenil" info "$example" "$work/clean.wav" > "$work/info.log" 2>&1 || fail "CLI info"
# each file's own line starts with its path (the lines under it name clipping, hum, tags)
dur_in=$(grep "^$example: " "$work/info.log" | grep -o '([0-9.]* s)' || true)
dur_out=$(grep "^$work/clean.wav: " "$work/info.log" | grep -o '([0-9.]* s)' || true)
[ -n "$dur_in" ] && [ "$dur_in" = "$dur_out" ] || fail "output length $dur_out differs from input $dur_in"
# Ogg Opus goes through the bundled libsndfile (soundfile), not pedalboard
.venv/bin/python -c "import sys, soundfile as sf, mutagen; x, r = sf.read(sys.argv[1], frames=96000); sf.write(sys.argv[2], x, r, format='OGG', subtype='OPUS'); m = mutagen.File(sys.argv[2]); m['title'] = 'Smoke'; m.save()" "$example" "$work/voice.opus"
"$app/noisenil" render "$work/voice.opus" -o "$work/voice.ogg" -q > "$work/opus.log" 2>&1 || fail "CLI render of Ogg Opus"
"$app/noisenil" info "$work/voice.ogg" >> "$work/opus.log" 2>&1 && grep -q "(2.00 s)" "$work/opus.log" || fail "Ogg Opus output length"
# M4A (a Zoom or phone recording) and an MP4 video through the bundled FFmpeg (PyAV), written back as such
.venv/bin/python - "$example" "$work/zoom.m4a" "$work/show.mp4" <<'PY'
import sys

import av
import numpy as np
import soundfile as sf

x, rate = sf.read(sys.argv[1], frames=96000, dtype="float32", always_2d=True)
with av.open(sys.argv[3], "w") as container:  # 2 s of a 64x64 picture with the example's sound
    picture = container.add_stream("libx264", rate=25)
    picture.width, picture.height, picture.pix_fmt = 64, 64, "yuv420p"
    sound = container.add_stream("aac", rate=rate, layout="mono")
    for k in range(50):
        image = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 4 * k, np.uint8), format="rgb24")
        image.pts = k
        for packet in picture.encode(image):
            container.mux(packet)
    for i in range(0, len(x), 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[i : i + 1024, :1].T), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, i
        for packet in sound.encode(frame):
            container.mux(packet)
    for stream in (picture, sound):
        for packet in stream.encode(None):
            container.mux(packet)
with av.open(sys.argv[2], "w") as container:
    stream = container.add_stream("aac", rate=rate, layout="mono")
    for i in range(0, len(x), 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[i : i + 1024, :1].T), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
PY
"$app/noisenil" render "$work/zoom.m4a" -q > "$work/m4a.log" 2>&1 || fail "CLI render of M4A"
"$app/noisenil" info "$work/zoom_clean.m4a" >> "$work/m4a.log" 2>&1 && grep -q "M4A AAC float32, 48000 Hz, 1 ch, .* kbps, 0:02 (2.00 s)" "$work/m4a.log" || fail "M4A output (AAC through the bundled FFmpeg)"
"$app/noisenil" render "$work/show.mp4" -q > "$work/mp4.log" 2>&1 || fail "CLI render of an MP4 video"
.venv/bin/python -c "import sys, av; c = av.open(sys.argv[1]); assert [s.type for s in c.streams] == ['video', 'audio'] and c.streams.video[0].frames == 50" "$work/show_clean.mp4" || fail "MP4 video output (picture copied, sound cleaned)"
# its tags go through the bundled mutagen
.venv/bin/python -c "import sys, mutagen; assert mutagen.File(sys.argv[1])['title'] == ['Smoke']" "$work/voice.ogg" || fail "the Opus file's title did not reach its output"
"$app/noisenil" models > "$work/models.log" 2>&1 || fail "CLI models"
grep -q "noisenil_fb (default)" "$work/models.log" || fail "shipped models missing from the bundle"
"$app/noisenil" classify "$example" > "$work/classify.log" 2>&1 || fail "CLI classify"
"$app/noisenil" render "$example" -o "$work/auto.wav" --model auto -q > "$work/auto.log" 2>&1 || fail "CLI render --model auto"

"$app/noisenil-gui" --audio-devices > "$work/audio.log" 2>&1 || fail "PortAudio not loadable"
grep -q "PortAudio: .*_internal/libportaudio" "$work/audio.log" || fail "sounddevice did not load the bundled PortAudio"

cat "$work"/*.log "$work"/config/logs/*.log 2>/dev/null > "$work/all.txt" || true
if grep -nE "ModuleNotFoundError|ImportError|No module named|Traceback" "$work/all.txt"; then fail "import errors in the logs"; fi

echo "smoke test passed: $(du -sh "$app" | cut -f1) bundle; start-up: CLI ${cli_start} ms, GUI ${gui_start} ms (to a drawn window)"
