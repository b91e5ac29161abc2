"""NoiseNil's desktop app (PySide6). A stub until the desktop-app issue lands; the engine is ``plugin_host``."""
