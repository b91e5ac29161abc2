"""The input check: a cubic in one feature explains a target made from that feature, and nothing of a random one."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the feature check needs torch (our STFT and features)")

from models import feature_check, fullband


def test_a_target_made_from_a_feature_is_explained_and_a_random_one_is_not(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    noisy = np.stack([rng.standard_normal(t.size) * 0.01 + (k % 2) * 0.1 * np.sin(2 * np.pi * 300 * t) * (t > 0.5) for k in range(4)]).astype(np.float16)
    net = fullband.FullBandNet(logmag_bins=96, noise_floor=True)
    bins = []
    for x in noisy:
        spec = fullband.stft(torch.from_numpy(x.astype(np.float32))[None])
        with torch.no_grad():
            f = net.features_sequence(spec.real.contiguous(), spec.imag.contiguous())[0].numpy()
        bins.append(1 / (1 + np.exp(-(4 * f[-96:] - 1))).T)  # the per-bin gains: a function of the level above the floor
    np.save(tmp_path / "noisy.npy", noisy)
    np.save(tmp_path / "teacher.npy", rng.uniform(0.05, 0.95, (4, 100, 32)).astype(np.float16))
    np.save(tmp_path / "teacher_bins.npy", np.stack(bins).astype(np.float16))
    r2 = feature_check.check(tmp_path, mixtures=4)
    assert r2["bin: level above floor"] > 0.95
    assert r2["bin: level vs 1 s mean"] < r2["bin: level above floor"] - 0.2
    assert abs(r2["band: level vs 1 s mean"]) < 0.05 and abs(r2["band: level above floor"]) < 0.05
