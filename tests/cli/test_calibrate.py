"""`supernode calibrate`: writes the fitted profile, reports, plots, refuses unphysical fits."""

import tomllib

import pytest

from supernode.cli.calibrate import main
from supernode.perf import load_calibration
from supernode.perf.calib import default_targets_path


def test_writes_fitted_profile_report_and_plot(tmp_path, capsys):
    """The command reproduces the shipped fit, prints target vs model and writes a PNG."""
    out, plot = tmp_path / "fit.toml", tmp_path / "report.png"
    assert main(["--output", str(out), "--report", "--plot", str(plot)]) == 0
    params = tomllib.loads(out.read_text())["parameters"]
    shipped = load_calibration("ascend-910c")
    assert params["decode_efficiency"] == pytest.approx(shipped.decode_efficiency, rel=1e-6)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "decode batch 96/NPU" in text and "prefill perfect EPLB" in text and "dispatch EP8" in text


def test_refuses_unphysical_targets(tmp_path, capsys):
    """A target beyond the hardware's reach is refused with a clear message and exit 1."""
    text = default_targets_path().read_text().replace("= 6688", "= 66880")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["--targets", str(bad), "--dry-run"])
    assert exc.value.code == 1
    assert "refusing" in capsys.readouterr().err


def test_missing_targets_file_names_the_flag(tmp_path, capsys):
    """A missing --targets file is an argparse error naming the flag."""
    with pytest.raises(SystemExit) as exc:
        main(["--targets", str(tmp_path / "none.toml")])
    assert exc.value.code == 2 and "--targets" in capsys.readouterr().err
