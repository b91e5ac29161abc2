"""Independent re-implementations of third-party models' published processing scripts.

They run the same ONNX graphs the way upstream does (whole-signal STFT, upstream's framing and
scaling), without NoiseNil's engine, so tests and benchmarks can compare the engine's output
and speed against them:

* GTCRN: ``stream/gtcrn_stream.py`` (torch.stft/istft, centre padding with reflection,
  sqrt-Hann window, one frame per ONNX call with the three caches fed back).
* DTLN: ``real_time_processing_onnx.py`` (512-sample buffer, 128 shift, output scaled by 1/4).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def gtcrn(onnx_path, audio: np.ndarray, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    """16 kHz mono in, enhanced 16 kHz mono out (same length), as upstream's ONNX streaming demo."""
    x = audio.astype(np.float64)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))  # torch.hann_window(512).pow(0.5)
    padded = np.pad(x, n_fft // 2, mode="reflect")  # torch.stft(center=True, pad_mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    sess = _session(onnx_path)
    conv = np.zeros([2, 1, 16, 16, 33], np.float32)
    tra = np.zeros([2, 3, 1, 1, 16], np.float32)
    inter = np.zeros([2, 1, 33, 16], np.float32)
    out = np.zeros(len(padded))
    norm = np.zeros(len(padded))
    for t in range(n_frames):
        spec = np.fft.rfft(padded[t * hop : t * hop + n_fft] * window)
        mix = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32).reshape(1, -1, 1, 2)
        enh, conv, tra, inter = sess.run(None, {"mix": mix, "conv_cache": conv, "tra_cache": tra, "inter_cache": inter})
        e = enh.reshape(-1, 2).astype(np.float64)
        frame = np.fft.irfft(e[:, 0] + 1j * e[:, 1], n=n_fft) * window
        out[t * hop : t * hop + n_fft] += frame
        norm[t * hop : t * hop + n_fft] += window**2
    y = out / np.where(norm > 1e-11, norm, 1.0)  # torch.istft normalisation
    return y[n_fft // 2 : n_fft // 2 + len(x)].astype(np.float32)


def dtln(model_1, model_2, audio: np.ndarray, block_len: int = 512, block_shift: int = 128) -> np.ndarray:
    """16 kHz mono in, enhanced 16 kHz mono out (same length, delayed by block_len - block_shift), as upstream."""
    s1, s2 = _session(model_1), _session(model_2)
    names1, names2 = [i.name for i in s1.get_inputs()], [i.name for i in s2.get_inputs()]
    state1 = np.zeros([1, 2, 128, 2], np.float32)
    state2 = np.zeros([1, 2, 128, 2], np.float32)
    in_buffer = np.zeros(block_len, np.float32)
    out_buffer = np.zeros(block_len, np.float32)
    out = np.zeros(len(audio), np.float32)
    for idx in range(len(audio) // block_shift):
        in_buffer[:-block_shift] = in_buffer[block_shift:]
        in_buffer[-block_shift:] = audio[idx * block_shift : (idx + 1) * block_shift]
        spec = np.fft.rfft(in_buffer)
        mag, phase = np.abs(spec), np.angle(spec)
        mask, state1 = s1.run(None, {names1[0]: mag.reshape(1, 1, -1).astype(np.float32), names1[1]: state1})
        block = np.fft.irfft(mag * mask.reshape(-1) * np.exp(1j * phase)).reshape(1, 1, -1).astype(np.float32)
        out_block, state2 = s2.run(None, {names2[0]: block, names2[1]: state2})
        if block_shift / block_len < 0.5:
            out_block = out_block * (block_shift / block_len)
        out_buffer[:-block_shift] = out_buffer[block_shift:]
        out_buffer[-block_shift:] = 0.0
        out_buffer += out_block.reshape(-1)
        out[idx * block_shift : (idx + 1) * block_shift] = out_buffer[:block_shift]
    return out
