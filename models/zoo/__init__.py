"""The seed model zoo: the five seed projects' models, trained on our corpus, exported to ONNX.

All run at 16 kHz on one STFT (512-point sqrt-Hann, 256 hop: 16 ms frames, the engine's framing)
or, for the fully convolutional model, on the waveform. ``python -m models.zoo train NAME`` and
``python -m models.zoo export NAME``; the recipes are in ``models/configs/zoo_<name>.json``.
"""
