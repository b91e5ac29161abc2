"""Export is strict: ONNX must match torch or nothing is written (needs torch: the `train` extra)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need torch (pip install -e '.[train]')")

from models import classical, export  # noqa: E402


def test_classical_export_round_trip(tmp_path):
    frames = export.parity_frames(48000, 960, 480, "sqrt_hann", seconds=1.0)
    fields = classical._spec(classical.WienerMCRA()) | {"licence": "GPL-3.0-or-later"}
    path = export.export_streaming(classical.WienerMCRA().eval(), "wiener", fields, frames, out_dir=tmp_path)
    manifest = json.loads((tmp_path / "wiener.json").read_text())
    assert path.is_file() and manifest["export"]["parity_max_abs_error"] <= 1e-4
    golden = np.load(tmp_path / "golden" / "wiener.npz")
    assert golden["input"].shape[0] == golden["output"].shape[0] > 0


def test_mismatch_fails_and_writes_nothing(tmp_path, monkeypatch):
    frames = export.parity_frames(48000, 960, 480, "sqrt_hann", seconds=0.5)
    real = export._run_onnx
    monkeypatch.setattr(export, "_run_onnx", lambda *a: real(*a) + 1e-2)
    fields = classical._spec(classical.SpectralSubtraction()) | {"licence": "GPL-3.0-or-later"}
    with pytest.raises(export.ExportMismatch, match="differ by"):
        export.export_streaming(classical.SpectralSubtraction().eval(), "ss", fields, frames, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
