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
