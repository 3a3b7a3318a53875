"""`supernode calibrate`: writes into the working directory unless asked to update the package,
reports the accuracy table, refuses unphysical fits."""

import tomllib
from pathlib import Path

import pytest

from supernode.cli import calibrate
from supernode.cli.calibrate import main
from supernode.perf import load_calibration
from supernode.perf.calib import default_targets_path
from supernode.perf.calib.targets import targets_dir

H800 = str(targets_dir() / "h800.toml")


def test_default_output_goes_to_the_working_directory(tmp_path, monkeypatch, capsys):
    """Without flags the fit lands in ./fitted-<hardware>.toml and the package is untouched."""
    monkeypatch.chdir(tmp_path)
    shipped = calibrate._shipped_path("ascend-910c").read_bytes()
    assert main([]) == 0
    params = tomllib.loads((tmp_path / "fitted-ascend-910c.toml").read_text())["parameters"]
    assert params["decode_efficiency"] == pytest.approx(
        load_calibration("ascend-910c").decode_efficiency, rel=1e-4)
    assert calibrate._shipped_path("ascend-910c").read_bytes() == shipped
    assert "fitted-ascend-910c.toml" in capsys.readouterr().out


def test_report_prints_the_accuracy_table_and_writes_the_plot(tmp_path, monkeypatch, capsys):
    """--report prints fitted parameters with provenance, every target and every prediction
    of docs/accuracy.md, and writes the plot into the working directory."""
    monkeypatch.chdir(tmp_path)
    assert main(["--dry-run", "--report"]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "calibration-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for needle in ("decode batch 96/NPU", "prefill perfect EPLB", "dispatch EP8", "EMS reuse",
                   "H800 prefill EP32", "EP buffers", "predicted", "from"):
        assert needle in text, needle
    assert not list(tmp_path.glob("*.toml"))


def test_update_package_writes_the_fit_and_its_sharers(tmp_path, monkeypatch, capsys):
    """--update-package writes the hardware's packaged file and the profiles that share it."""
    written: dict[str, Path] = {}

    def fake(hardware: str) -> Path:
        written[hardware] = tmp_path / f"{hardware}.toml"
        return written[hardware]

    monkeypatch.setattr(calibrate, "_shipped_path", fake)
    assert main(["--targets", H800, "--update-package"]) == 0
    assert set(written) == {"h800", "h100"}
    h800 = tomllib.loads(written["h800"].read_text())
    h100 = tomllib.loads(written["h100"].read_text())
    assert h800["parameters"] == h100["parameters"]
    assert "shared with h800" in h100["provenance"]["gemm_efficiency"]
    assert h800["parameters"]["prefill_efficiency"] == pytest.approx(
        load_calibration("h800").prefill_efficiency, rel=1e-4)


def test_explicit_output_path(tmp_path):
    """--output names the file to write."""
    out = tmp_path / "x.toml"
    assert main(["--targets", H800, "--output", str(out)]) == 0
    assert tomllib.loads(out.read_text())["provenance"]["decode_step_overhead_s"].endswith(
        "ascend-910c fit")


def test_refuses_unphysical_targets(tmp_path, capsys):
    """A target beyond the hardware's reach is refused with a clear message and exit 1."""
    text = default_targets_path().read_text().replace("= 6688", "= 66880")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["--targets", str(bad), "--dry-run"])
    assert exc.value.code == 1
    assert "refusing" in capsys.readouterr().err


@pytest.mark.parametrize("argv,flag", [(["--targets", "/nonexistent.toml"], "--targets"),
                                       (["--update-package", "--output", "x"], "--output")])
def test_bad_flags_name_the_flag(argv, flag, capsys):
    """A missing --targets file or conflicting destinations are argparse errors naming a flag."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and flag in capsys.readouterr().err


def test_help_works(capsys):
    """`supernode calibrate --help` prints usage and exits 0."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--update-package" in capsys.readouterr().out


def test_dry_run_shows_each_target_beside_the_fit(tmp_path, monkeypatch, capsys):
    """Every run prints what the fit reproduced: the H800 targets within 3%, nothing written."""
    monkeypatch.chdir(tmp_path)
    assert main(["--targets", H800, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not list(tmp_path.iterdir())
    fits = [line for line in out.splitlines() if line.rstrip().endswith(" fit")]
    assert len(fits) == 2 and all("H800" in line for line in fits)
    for line in fits:
        error = float(line.split("%")[0].split()[-1])
        assert abs(error) <= 3.0
