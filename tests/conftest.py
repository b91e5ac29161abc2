import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

# Tests never see (or write to) the user's own model folder, settings or logs.
os.environ["NOISENIL_HOME"] = tempfile.mkdtemp(prefix="noisenil-test-home-")
os.environ["NOISENIL_CONFIG_DIR"] = tempfile.mkdtemp(prefix="noisenil-test-config-")
os.environ.pop("NOISENIL_MODEL_PATH", None)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NOISENIL_DATA", ROOT.parent / "shared" / "data"))
EXAMPLES = ROOT / "examples"


def read_audio(path) -> tuple[np.ndarray, int]:
    with AudioFile(str(path)) as f:
        return f.read(f.frames), int(f.samplerate)


def write_audio(path, x, sample_rate=48000, bit_depth=16) -> Path:
    x = np.atleast_2d(np.asarray(x, np.float32))
    with AudioFile(str(path), "w", sample_rate, x.shape[0], bit_depth=bit_depth) as f:
        f.write(x)
    return Path(path)


def write_av(path, x, sample_rate=48000, codec="aac", sample_format="fltp", video=False, faststart=False, audio_start=0) -> Path:
    """An M4A/MP4/WebM/... file through FFmpeg (PyAV): AAC as phones and Zoom write it, ALAC
    (``sample_format="s16p"``/``"s32p"``), Opus in WebM; with ``video``, beside a small H.264
    picture (``x=None``: a video without sound, one second long); ``faststart``: the index before
    the audio, as phones write an M4A; ``audio_start``: samples of picture before the sound starts."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        if video:
            picture = container.add_stream("libx264", rate=25)
            picture.width, picture.height, picture.pix_fmt = 64, 64, "yuv420p"
        if x is not None:
            x = np.atleast_2d(np.asarray(x, np.float32))
            layout = {1: "mono", 2: "stereo"}[x.shape[0]]
            stream = container.add_stream(codec, rate=sample_rate, layout=layout)
            stream.codec_context.format = sample_format
            scale = {"s16p": 32767, "s32p": 2**31 - 256}.get(sample_format)
            for i in range(0, x.shape[1], 1024):
                block = x[:, i : i + 1024]
                block = np.round(block * scale).astype(np.int16 if sample_format == "s16p" else np.int32) if scale else block
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=sample_format, layout=layout)
                frame.sample_rate, frame.pts = sample_rate, audio_start + i
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        if video:
            for k in range(int(x.shape[1] / sample_rate * 25) if x is not None else 25):
                image = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                image.pts = k
                for packet in picture.encode(image):
                    container.mux(packet)
            for packet in picture.encode(None):
                container.mux(packet)
    return Path(path)


def speechlike(seconds=2.0, sample_rate=48000, seed=0) -> np.ndarray:
    """Voiced harmonics with a wandering pitch, in syllable-like bursts (band-limited to 5 kHz)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 130 + 25 * np.sin(2 * np.pi * 0.9 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 155 < 5000)
    bursts = np.clip(np.sin(2 * np.pi * 2.1 * t) * 3, 0, 1)
    return (0.25 * voiced * bursts).astype(np.float32)


@pytest.fixture(scope="session")
def clean_speech() -> np.ndarray:
    """Real (synthesised) speech from the bundled example, 48 kHz mono."""
    x, rate = read_audio(EXAMPLES / "clean_speech.flac")
    assert rate == 48000
    return x[0]


@pytest.fixture(scope="session")
def noisy_example() -> np.ndarray:
    x, _ = read_audio(EXAMPLES / "noisy_podcast.flac")
    return x[0]


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "manifest.csv").is_file():
        pytest.skip(f"corpus not present at {SHARED_DATA} (CI has it beside the checkout)")
    return SHARED_DATA


def run_cli(*args, cwd=None, env=None, preexec_fn=None):
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "plugin_host", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        preexec_fn=preexec_fn,
        timeout=600,
    )


# --------------------------------------------------------------------------- a real (virtual) audio server
class JackServer:
    """The JACK dummy backend: a deterministic virtual sound card (48 kHz, 480-frame periods).

    Started by the tests themselves (so `.ci/run` needs only the packages), or reused when one
    is already running. ``log`` collects what jackd prints (xruns name the client at fault)."""

    RATE, PERIOD = 48000, 480

    def __init__(self):
        import shutil

        self.jackd = shutil.which("jackd")
        self.proc = None
        self.log_path = Path(tempfile.mkdtemp(prefix="noisenil-jack-")) / "jackd.log"
        # clients must never start a server of their own (JACK would try its default, real backend)
        os.environ["JACK_NO_START_SERVER"] = "1"
        self.env = dict(os.environ)

    def running(self) -> bool:
        import subprocess

        r = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10, env=self.env)
        return r.returncode == 0 and "system:" in r.stdout

    def start(self) -> None:
        import subprocess
        import time

        if self.running():
            return
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        self.proc = subprocess.Popen(
            [self.jackd, "--no-realtime", "-d", "dummy", "-r", str(self.RATE), "-p", str(self.PERIOD)],
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 15
        while not self.running():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"jackd did not start; see {self.log_path}")
            time.sleep(0.1)
        import sounddevice as sd

        sd._terminate()  # PortAudio looks for JACK when it initialises
        sd._initialize()

    def kill(self) -> None:
        import subprocess

        subprocess.run(["pkill", "-KILL", "-x", "jackd"], check=False)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """Freeze the server (as a hung driver or a device that stops delivering would)."""
        import signal

        subprocess_pids = self._pids()
        for pid in subprocess_pids:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def _pids(self) -> list[int]:
        import subprocess

        out = subprocess.run(["pgrep", "-x", "jackd"], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace") if self.log_path.exists() else ""

    def ports(self) -> list[str]:
        import subprocess

        return subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10, env=self.env).stdout.split()

    def connect(self, src: str, dst: str) -> None:
        import subprocess

        subprocess.run(["jack_connect", src, dst], check=True, capture_output=True, timeout=10, env=self.env)

    def wait_port(self, pattern: str, timeout: float = 10.0, pick: int = 0) -> str:
        """The ``pick``-th port (in number order) whose name matches ``pattern``, once it exists."""
        import re
        import time

        def number(name):
            digits = re.findall(r"\d+", name.split(":")[-1])
            return int(digits[-1]) if digits else 0

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = sorted((p for p in self.ports() if re.fullmatch(pattern, p)), key=number)
            if len(found) > pick:
                return found[pick]
            time.sleep(0.05)
        raise TimeoutError(f"no JACK port matching {pattern!r}; ports: {self.ports()}")


@pytest.fixture(scope="session")
def jack():
    import shutil

    server = JackServer()
    if server.jackd is None or shutil.which("jack_lsp") is None:
        pytest.skip("jackd is not installed (apt-get install --no-install-recommends jackd2 jack-tools)")
    try:
        import sounddevice  # noqa: F401
    except OSError as e:
        pytest.skip(f"PortAudio is not installed: {e}")
    server.start()
    yield server
    import sounddevice as sd

    sd._terminate()  # PortAudio's JACK client must leave before the server does (else it aborts at exit)
    if server.proc is not None:
        server.proc.terminate()
        server.proc.wait(timeout=10)
