"""`supernode estimate`: JSON fields, readable table with honest units, flag errors, the EMS
reuse experiment."""

import json

import pytest

from supernode.cli.estimate import main

DECODE = ["decode", "--hardware", "ascend-910c", "--model", "deepseek-r1", "--devices", "160",
          "--dp", "320", "--ep", "320", "--batch-per-device", "96", "--kv-len", "4096",
          "--mtp", "1", "--mtp-acceptance", "0.7"]
PREFILL = ["prefill", "--hardware", "ascend-910c", "--model", "deepseek-r1", "--devices", "16",
           "--ep", "32", "--prompt-len", "4096", "--tokens-per-device", "16384"]
REUSE = ["reuse", "--devices", "16", "--ep", "32", "--prompt-len", "4096",
         "--tokens-per-device", "16384"]


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_decode_json_fields_and_target(capsys):
    """Decode JSON carries step_s, tpot_s, tokens_per_s_per_device and the breakdown."""
    out = _json(capsys, DECODE + ["--quant", "int8", "--eplb", "default"])
    assert out["tokens_per_s_per_device"] == pytest.approx(1943, rel=0.01)
    assert out["tpot_s"] == pytest.approx(0.0494, rel=0.01)
    assert out["step_s"] == pytest.approx(out["tpot_s"] * 1.7)
    assert {"attention", "moe_gemm", "dispatch", "combine", "overhead", "mtp"} <= set(out["breakdown"])


def test_decode_counts_chained_mtp_tokens(capsys):
    """Two drafts at 70% acceptance emit 1 + 0.7 + 0.49 = 2.19 tokens per step; the MTP drafts'
    cost per step and per emitted token are reported."""
    out = _json(capsys, DECODE[:-4] + ["--mtp", "2", "--mtp-acceptance", "0.7"])
    assert out["expected_tokens_per_step"] == pytest.approx(2.19)
    assert out["step_s"] / out["tpot_s"] == pytest.approx(2.19)
    assert out["mtp_s_per_step"] == pytest.approx(out["breakdown"]["mtp"])
    assert out["mtp_s_per_token"] == pytest.approx(out["mtp_s_per_step"] / 2.19)


@pytest.mark.parametrize("eplb,target", [("default", 5655), ("perfect", 6688)])
def test_prefill_json_fields_and_target(capsys, eplb, target):
    """Prefill JSON carries batch_s, tokens_per_s_per_device, the regime and the breakdown."""
    out = _json(capsys, PREFILL + ["--eplb", eplb])
    assert out["tokens_per_s_per_device"] == pytest.approx(target, rel=0.01)
    assert out["batch_s"] > 0 and "moe_gemm" in out["breakdown"]
    assert out["fetch_s"] == 0 and out["regime"] == "compute"


def test_prefill_plane_vpc_is_slower_and_shows_the_fetch(capsys):
    """With 3,584 cached tokens per prompt, EMS over VPC is slower than over UB, and both show
    the fetch as its own part."""
    ub = _json(capsys, PREFILL + ["--cached-prefix-len", "3584", "--plane", "ub"])
    vpc = _json(capsys, PREFILL + ["--cached-prefix-len", "3584", "--plane", "vpc"])
    assert vpc["batch_s"] > ub["batch_s"] and vpc["fetch_s"] > ub["fetch_s"] > 0
    assert ub["breakdown"]["cache_fetch"] == ub["fetch_s"] and vpc["plane"] == "vpc"


def test_prefill_cached_prefix_and_no_microbatch(capsys):
    """--cached-prefix-len raises prompt throughput; at the paper's batch the overlap wins."""
    base = _json(capsys, PREFILL)
    cached = _json(capsys, PREFILL + ["--cached-prefix-len", "2048"])
    serial = _json(capsys, PREFILL + ["--no-microbatch"])
    assert cached["tokens_per_s_per_device"] > base["tokens_per_s_per_device"]
    assert serial["batch_s"] > base["batch_s"]


def test_table_labels_carry_the_units_of_their_values(capsys):
    """The readable table labels milliseconds as ms (the headline step is in ms, not `_s`)."""
    assert main(DECODE) == 0
    out = capsys.readouterr().out
    step_ms = _json(capsys, DECODE)["step_s"] * 1e3
    assert f"step (ms): {step_ms:,.3f}" in out and "busy (ms)" in out
    assert "step_s" not in out and "tokens/s per device" in out and "moe_gemm" in out


def test_prefill_table_shows_plane_fetch_and_regime(capsys):
    """The prefill table names the cache plane, the fetch time and the bound regime."""
    assert main(PREFILL + ["--cached-prefix-len", "3584", "--plane", "vpc"]) == 0
    out = capsys.readouterr().out
    assert "cache fetch (ms)" in out and "cache_fetch" in out
    assert "cache plane: vpc" in out and "regime:" in out


def test_reuse_experiment_both_planes_with_and_without_ems(capsys):
    """`estimate reuse` prices each reuse rate without a cache and from EMS over UB and VPC;
    throughput rises with reuse, and UB beats VPC."""
    out = _json(capsys, REUSE + ["--reuse", "0,0.5,0.9"])
    points = {(p["reuse"], p["cache"]): p for p in out["points"]}
    assert set(points) == {(r, c) for r in (0.0, 0.5, 0.9) for c in ("none", "ems_ub", "ems_vpc")}
    for r in (0.5, 0.9):
        ub, vpc, none = (points[(r, c)] for c in ("ems_ub", "ems_vpc", "none"))
        assert ub["tokens_per_s_per_device"] > vpc["tokens_per_s_per_device"] > none[
            "tokens_per_s_per_device"]
        assert ub["ttft_s"] < vpc["ttft_s"] < none["ttft_s"]
    assert main(REUSE + ["--reuse", "0.5"]) == 0
    assert "ems_vpc" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["decode", "--help"], ["prefill", "--help"],
                                  ["reuse", "--help"]])
def test_every_help_works(capsys, argv):
    """Each subcommand's --help prints usage and exits 0."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("argv,flag", [
    (DECODE + ["--eplb", "0.5"], "--eplb"),
    (DECODE + ["--quant", "int4"], "--quant"),
    (DECODE[:-2] + ["--mtp-acceptance", "x"], "--mtp-acceptance"),
    (PREFILL + ["--tokens-per-device", "-3"], "--tokens-per-device"),
    (PREFILL + ["--plane", "wifi"], "--plane"),
    (REUSE + ["--reuse", "0.5,1.5"], "--reuse"),
    (["decode", "--devices", "2", "--kv-len", "10"], "--batch-per-device"),
])
def test_bad_flags_name_the_flag(capsys, argv, flag):
    """A bad flag is an argparse error (exit 2) that names the flag."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_inconsistent_parallelism_is_a_clear_error(capsys):
    """dp larger than the dies of the instance is reported by name."""
    with pytest.raises(SystemExit) as exc:
        main(["decode", "--devices", "2", "--dp", "8", "--batch-per-device", "1", "--kv-len", "1"])
    assert exc.value.code == 2
    assert "dp=8" in capsys.readouterr().err
