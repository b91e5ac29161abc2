#!/usr/bin/env bash
# docs/live.png: the app's Live page monitoring the bundled example, played into the app's
# microphone through the JACK dummy server (needs jackd2, jack-tools and xvfb; run after setup.sh).
#     bash scripts/live_screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/live.png}
tmp=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
JACK_NO_AUDIO_RESERVATION=1 jackd --no-realtime -d dummy -r 48000 -p 480 >"$tmp/jackd.log" 2>&1 &
pids+=($!)
sleep 2
# settings of its own, so that the picture shows the defaults, not this user's choices
printf '{"live_input": "system", "live_output": "system", "live_record_dir": "%s"}\n' "$tmp/takes" >"$tmp/settings.json"
NOISENIL_CONFIG_DIR=$tmp xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/noisenil-gui --live --live-seconds 13 --screenshot "$out" &
gui=$!
pids+=($gui)
port=""
for _ in $(seq 100); do
    port=$(jack_lsp 2>/dev/null | grep -m1 -E '^PortAudio[^:]*:in' || true)
    [ -n "$port" ] && break
    sleep 0.2
done
[ -n "$port" ] || { echo "error: the app opened no JACK input port" >&2; exit 1; }
jack-play examples/noisy_podcast.flac >/dev/null 2>&1 &
player=$!
pids+=($player)
for _ in $(seq 50); do jack_lsp 2>/dev/null | grep -q "jack-play-$player:out_1" && break; sleep 0.1; done
jack_connect "jack-play-$player:out_1" "$port"
wait "$gui"
