"""Calibration: the four section-4 targets, the fit's reproducibility, refusal of bad fits."""

import dataclasses

import pytest

from supernode.perf import estimate_decode, estimate_prefill, load_calibration
from supernode.perf.calib import CalibrationError, fit_calibration, load_targets
from supernode.perf.calib.report import operator_rows
from supernode.perf.calibration import Calibration

from .conftest import paper_decode, paper_prefill


@pytest.mark.parametrize("batch,tok_s,tpot_s", [(96, 1943, 0.0494), (8, 538, 0.0149)])
def test_decode_targets_within_3_percent(batch, tok_s, tpot_s):
    """Decode at KV 4096 reproduces the published tokens/s/NPU and TPOT within 3%."""
    e = estimate_decode(paper_decode(), batch, 4096)
    assert e.tokens_per_s_per_device == pytest.approx(tok_s, rel=0.03)
    assert e.tpot_s == pytest.approx(tpot_s, rel=0.03)


@pytest.mark.parametrize("eplb,tok_s", [("default", 5655), ("perfect", 6688)])
def test_prefill_targets_within_3_percent(eplb, tok_s):
    """Prefill (16 NPUs, EP32, 4K prompts, 16K tokens/NPU) within 3% of the paper."""
    e = estimate_prefill(paper_prefill(eplb=eplb), 4096, 16384)
    assert e.tokens_per_s_per_device == pytest.approx(tok_s, rel=0.03)


def test_fit_reproduces_the_shipped_file():
    """`supernode calibrate` regenerates the committed fitted profile from the targets file."""
    fitted, shipped = fit_calibration(load_targets()), load_calibration("ascend-910c")
    for f in dataclasses.fields(Calibration):
        if f.name != "source":
            assert getattr(fitted, f.name) == pytest.approx(getattr(shipped, f.name), rel=1e-6)


def test_fitted_values_are_physical():
    """Fitted efficiencies lie in (0, 1], overheads are non-negative, skew >= 1."""
    cal = load_calibration("ascend-910c")
    assert 0 < cal.decode_efficiency <= 1 and 0 < cal.prefill_efficiency <= 1
    assert 0 <= cal.decode_step_overhead_s < 0.01
    assert 1 <= cal.eplb_default_skew < 3


def test_operator_figures_close_to_measured():
    """The fitted all-to-all model is within 12% of every measured dispatch/combine time."""
    rows = operator_rows(load_targets(), load_calibration("ascend-910c"))
    assert len(rows) == 12
    assert all(abs(r.error) < 0.12 for r in rows)


@pytest.mark.parametrize("field,value", [("gemm_efficiency", 1.2), ("decode_efficiency", 0.0),
                                         ("decode_step_overhead_s", -1e-3),
                                         ("eplb_default_skew", 0.9)])
def test_unphysical_calibration_refused(field, value):
    """A calibration with an efficiency outside (0, 1], a negative overhead or skew < 1 raises."""
    with pytest.raises(ValueError, match=field):
        load_calibration("ascend-910c").replace(**{field: value})


def test_impossible_target_refused():
    """A prefill target the hardware cannot reach even at efficiency 1 is refused."""
    targets = load_targets()
    fast = tuple(dataclasses.replace(t, tokens_per_s_per_device=t.tokens_per_s_per_device * 10)
                 for t in targets.prefill)
    with pytest.raises(CalibrationError, match="prefill_efficiency"):
        fit_calibration(dataclasses.replace(targets, prefill=fast))
