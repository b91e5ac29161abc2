# PyInstaller runtime hook: let sounddevice find the PortAudio bundled next to the executables.
# On Linux sounddevice asks ctypes.util.find_library("portaudio"), which never looks inside a bundle.
import ctypes.util
import os
import sys

_find_library = ctypes.util.find_library


def _find_bundled(name):
    if name == "portaudio":
        for candidate in ("libportaudio.so.2", "libportaudio.2.dylib", "libportaudio.dylib", "portaudio.dll"):
            path = os.path.join(getattr(sys, "_MEIPASS", ""), candidate)
            if os.path.exists(path):
                return path
    return _find_library(name)


ctypes.util.find_library = _find_bundled
