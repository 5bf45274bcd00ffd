"""The audit engine: AuditSpec -> AuditResult, and sweeps of one parameter into a curve.

spec.py holds the models, stats.py the bootstrap, runner.py the run and sweep, export.py tables.
"""

from facepriv_core.audit.curves import Curve, CurvePoint, curve_data, curves_data
from facepriv_core.audit.export import TABLE_METRICS, table, table_csv
from facepriv_core.audit.runner import (
    Cancel,
    Faces,
    Progress,
    SweepPoint,
    SweepResult,
    environment,
    load_faces,
    run,
    sweep,
)
from facepriv_core.audit.spec import AttackSpec, AuditResult, AuditSpec, Estimate
from facepriv_core.audit.stats import bootstrap_ci

__all__ = [
    "TABLE_METRICS",
    "AttackSpec",
    "AuditResult",
    "AuditSpec",
    "Cancel",
    "Curve",
    "CurvePoint",
    "Estimate",
    "Faces",
    "Progress",
    "SweepPoint",
    "SweepResult",
    "bootstrap_ci",
    "curve_data",
    "curves_data",
    "environment",
    "load_faces",
    "run",
    "sweep",
    "table",
    "table_csv",
]
