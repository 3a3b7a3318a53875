"""Calibration: fit the few free efficiencies/overheads to published targets, and report."""

from supernode.perf.calib.fit import CalibrationError, fit_calibration
from supernode.perf.calib.targets import TargetSet, default_targets_path, load_targets

__all__ = ["CalibrationError", "TargetSet", "default_targets_path", "fit_calibration",
           "load_targets"]
