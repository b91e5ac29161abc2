"""``noisenil-gui`` itself (desktop_app/__main__.py): what it says when the app cannot start."""

import importlib.util

from desktop_app import __main__ as gui_main


def test_without_the_gui_extra_it_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    # scripts/demo.sh installs the engine only; the entry point exists all the same
    monkeypatch.setenv("NOISENIL_CONFIG_DIR", str(tmp_path / "config"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("PySide6", "pyqtgraph") else real(name, *a))
    assert gui_main.missing_gui_packages() == ["PySide6", "pyqtgraph"]
    assert gui_main.main(["episode.wav"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: the app needs PySide6, pyqtgraph") and "pip install -e '.[gui]'" in err

