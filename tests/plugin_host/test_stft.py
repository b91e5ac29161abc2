import numpy as np
import pytest

from plugin_host.stft import StreamingSTFT, make_window, synthesis_window


@pytest.mark.parametrize("window", ["sqrt_hann", "hann", "vorbis"])
@pytest.mark.parametrize("n_fft,hop", [(960, 480), (512, 128), (960, 240)])
def test_identity_mask_reconstructs_exactly(window, n_fft, hop):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(hop * 60)
    stft = StreamingSTFT(n_fft, hop, window)
    y = np.concatenate([stft.synthesize(stft.analyze(x[i : i + hop])) for i in range(0, len(x), hop)])
    delay = n_fft - hop
    assert np.max(np.abs(y[delay:] - x[: len(x) - delay])) < 1e-5
    assert np.max(np.abs(y[:delay])) < 1e-6  # nothing before the input starts


def test_window_that_cannot_reconstruct_is_refused():
    w = make_window("hann", 512)
    w[:200] = 0.0
    with pytest.raises(ValueError, match="perfect reconstruction"):
        synthesis_window(w, 512)
