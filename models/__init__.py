"""NoiseNil's model zoo: shipped ONNX models (``*.onnx`` + ``*.json``) and the code that builds them.

Runtime code (``plugin_host``, ``desktop_app``) reads only the ONNX files and manifests; the
Python modules here (training, export) import torch and are used at build time only.
"""
