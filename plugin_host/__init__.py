"""NoiseNil's engine: ONNX denoisers as pedalboard-compatible effects, a mixed chain, batch rendering."""

from .chain import Chain, load_preset, preset_names
from .classify import ClassifyNoise
from .declip import Declip
from .dehum import Dehum
from .effects import Denoise
from .level import Level
from .errors import AudioFileError, ModelError, NoiseNilError, ParameterError, UnknownNameError
from .registry import CLASSIFIERS, DEFAULT_DENOISER, DENOISERS

__version__ = "0.1.0"
__all__ = [
    "Chain",
    "Denoise",
    "Declip",
    "Dehum",
    "Level",
    "ClassifyNoise",
    "load_preset",
    "preset_names",
    "DENOISERS",
    "CLASSIFIERS",
    "DEFAULT_DENOISER",
    "NoiseNilError",
    "AudioFileError",
    "ModelError",
    "ParameterError",
    "UnknownNameError",
    "__version__",
]
