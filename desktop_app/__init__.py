"""NoiseNil's desktop app (PySide6 + pyqtgraph): open, see, hear, control and export recordings.

Layout (after friture): each view is a widget (``views``) showing a small state model
(``session``), settings with defaults (``settings``); rendering and export run in workers
(``worker``) that call the engine (``plugin_host``); playback (``player``) copies from
preallocated arrays in its audio callback; one display timer moves the playhead.
"""
