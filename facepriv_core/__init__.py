"""FacePriv core: defences, attacks, models and audits for face privacy, without any UI."""

import os as _os

# onnxruntime (>= 1.2x) keeps a device id and an event store under ~/.cache/Microsoft and can
# upload usage events; this environment variable, read when its library loads, turns that off.
# Set here, before anything in FacePriv can import onnxruntime. A privacy tool sends nothing.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
