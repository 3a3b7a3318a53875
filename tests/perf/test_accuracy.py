"""docs/accuracy.md: generated from the model, complete, and fresh."""

import subprocess
import sys
from pathlib import Path

from supernode.perf.calib.accuracy import accuracy_rows, render_document

ROOT = Path(__file__).resolve().parents[2]


def test_accuracy_doc_is_fresh():
    """The committed docs/accuracy.md is exactly what scripts/accuracy.py renders now."""
    assert (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8") == render_document()
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "accuracy.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_every_target_is_a_row_and_predictions_are_separate():
    """Each serving, cache and operator target of every shipped targets file appears as a
    fitted row; the figures the fit never saw are predictions, GPUs included."""
    rows = accuracy_rows()
    fits = {(r.name, r.metric) for r in rows if r.kind == "fit"}
    assert ("ascend-910c: decode batch 8/NPU", "TPOT ms") in fits
    assert ("h800: H800 prefill EP32", "tokens/s/device") in fits
    assert sum(1 for name, _ in fits if "dispatch EP" in name) == 12
    predictions = [r for r in rows if r.kind == "prediction"]
    assert any(r.name.startswith("h800") for r in predictions)
    assert any("TTFT without cache" in r.metric for r in predictions)
    assert all(r.target and r.model for r in rows)
