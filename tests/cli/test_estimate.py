"""`supernode estimate`: the issue-3 interface, JSON fields, readable table, flag errors."""

import json

import pytest

from supernode.cli.estimate import main

DECODE = ["decode", "--hardware", "ascend-910c", "--model", "deepseek-r1", "--devices", "160",
          "--dp", "320", "--ep", "320", "--batch-per-device", "96", "--kv-len", "4096",
          "--mtp", "1", "--mtp-acceptance", "0.7"]
PREFILL = ["prefill", "--hardware", "ascend-910c", "--model", "deepseek-r1", "--devices", "16",
           "--ep", "32", "--prompt-len", "4096", "--tokens-per-device", "16384"]


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_decode_json_fields_and_target(capsys):
    """Decode JSON carries step_s, tpot_s, tokens_per_s_per_device and the breakdown."""
    out = _json(capsys, DECODE + ["--quant", "int8", "--eplb", "default"])
    assert out["tokens_per_s_per_device"] == pytest.approx(1943, rel=0.03)
    assert out["tpot_s"] == pytest.approx(0.0494, rel=0.03)
    assert out["step_s"] == pytest.approx(out["tpot_s"] * 1.7)
    assert {"attention", "moe_gemm", "dispatch", "combine", "overhead"} <= set(out["breakdown"])


@pytest.mark.parametrize("eplb,target", [("default", 5655), ("perfect", 6688)])
def test_prefill_json_fields_and_target(capsys, eplb, target):
    """Prefill JSON carries batch_s, tokens_per_s_per_device and the breakdown."""
    out = _json(capsys, PREFILL + ["--eplb", eplb])
    assert out["tokens_per_s_per_device"] == pytest.approx(target, rel=0.03)
    assert out["batch_s"] > 0 and "moe_gemm" in out["breakdown"]


def test_prefill_cached_prefix_and_no_microbatch(capsys):
    """--cached-prefix-len raises prompt throughput; --no-microbatch never speeds prefill."""
    base = _json(capsys, PREFILL)
    cached = _json(capsys, PREFILL + ["--cached-prefix-len", "2048"])
    serial = _json(capsys, PREFILL + ["--no-microbatch"])
    assert cached["tokens_per_s_per_device"] > base["tokens_per_s_per_device"]
    assert serial["batch_s"] >= base["batch_s"]


def test_table_without_json(capsys):
    """Without --json a readable table with the headline figures is printed."""
    assert main(DECODE) == 0
    out = capsys.readouterr().out
    assert "tokens_per_s_per_device" in out and "moe_gemm" in out and "tpot_s" in out


@pytest.mark.parametrize("argv,flag", [
    (DECODE + ["--eplb", "0.5"], "--eplb"),
    (DECODE + ["--quant", "int4"], "--quant"),
    (DECODE[:-2] + ["--mtp-acceptance", "x"], "--mtp-acceptance"),
    (PREFILL + ["--tokens-per-device", "-3"], "--tokens-per-device"),
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
