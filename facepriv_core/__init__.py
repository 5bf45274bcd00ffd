"""FacePriv core: defences, attacks, models and audits for face privacy, without any UI."""

__version__ = "0.1.0"
