"""``noisenil-gui [FILES...] [--live] [--screenshot PNG]``"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from logging.handlers import RotatingFileHandler


def setup_logging() -> str:
    from .settings import log_dir

    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "noisenil.log"
    handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("noisenil")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return str(path)


def print_audio_devices() -> int:
    try:
        import sounddevice as sd
    except (OSError, ImportError) as exc:
        print(f"error: PortAudio unavailable: {exc}", file=sys.stderr)
        return 1
    print(f"PortAudio: {sd._libname} ({sd.get_portaudio_version()[1]})")
    devices = sd.query_devices()
    print(f"{len(devices)} audio device(s)")
    for i, d in enumerate(devices):
        print(f"  {i}: {d['name']} (in {d['max_input_channels']}, out {d['max_output_channels']})")
    return 0


def missing_gui_packages() -> list[str]:
    """The 'gui' extra's packages that cannot be imported (``scripts/demo.sh`` installs the engine only)."""
    import importlib.util

    return [name for name in ("PySide6", "pyqtgraph", "platformdirs") if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="noisenil-gui", description="NoiseNil desktop app")
    parser.add_argument("files", nargs="*", help="recordings to open")
    parser.add_argument("--screenshot", metavar="PNG", help="open FILES, wait until rendered, save a screenshot of the window and quit")
    parser.add_argument("--timeout", type=float, default=300.0, help="with --screenshot: give up after this many seconds")
    parser.add_argument("--live", action="store_true", help="open on the Live page and start monitoring (with --screenshot: shoot after --live-seconds)")
    parser.add_argument("--live-seconds", type=float, default=5.0, help="with --live --screenshot: monitor this long before the picture")
    parser.add_argument("--audio-devices", action="store_true", help="print the PortAudio library, its version and the audio devices, then quit")
    args = parser.parse_args(argv)
    if args.audio_devices:
        return print_audio_devices()
    missing = missing_gui_packages()
    if missing:
        print(f"error: the app needs {', '.join(missing)}, which are not installed; install the 'gui' extra: pip install -e '.[gui]' (or: NOISENIL_EXTRAS=eval,gui bash scripts/setup.sh)", file=sys.stderr)
        return 2
    log_path = setup_logging()
    log = logging.getLogger("noisenil.gui")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("NoiseNil")
    from .main_window import MainWindow

    window = MainWindow()

    def excepthook(kind, value, tb):  # log the details, show one clear line
        log.error("unhandled error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        QMessageBox.critical(window, "NoiseNil", f"Unexpected error: {value}\nDetails are in {log_path}")

    sys.excepthook = excepthook
    window.show()
    status = {"code": 0}
    if args.screenshot:

        def shoot():
            app.processEvents()
            ok = window.grab().save(args.screenshot)
            status["code"] = 0 if ok else 1
            print(f"screenshot: {args.screenshot}" if ok else f"error: cannot write {args.screenshot}", file=sys.stderr if not ok else sys.stdout)
            app.quit()

        QTimer.singleShot(int(args.timeout * 1000), lambda: (print("error: timed out before everything rendered", file=sys.stderr), status.update(code=1), app.quit()))
        if args.live:
            QTimer.singleShot(int(args.live_seconds * 1000), shoot)
        else:
            window.all_rendered.connect(lambda: QTimer.singleShot(500, shoot))
            if not args.files:
                QTimer.singleShot(500, shoot)
    if args.live:
        window.tabs.setCurrentWidget(window.live)
        window.live.start()
    if args.files:
        window.open_files(args.files)
    app.exec()
    window.live.shutdown()  # stop the audio stream and close recordings however the app ended
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
