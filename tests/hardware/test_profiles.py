"""Hardware profiles: shipped data, cited sources, derived per-die/per-node figures."""

from importlib import resources

import pytest

from supernode.hardware import PLANES, Link, available_hardware, load_hardware


def test_all_profiles_load():
    """Every shipped profile loads and defines every network plane."""
    assert set(available_hardware()) >= {"ascend-910c", "h100", "h800"}
    for name in available_hardware():
        hw = load_hardware(name)
        assert all(hw.link(p).bandwidth_bytes_per_s > 0 for p in PLANES)


@pytest.mark.parametrize("name", ["ascend-910c", "h100", "h800"])
def test_every_constant_cites_a_source(name):
    """Each `key = value` line of a profile carries a source comment."""
    text = resources.files("supernode.hardware.profiles").joinpath(f"{name}.toml").read_text()
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[", "name", "notes")):
            assert "#" in line, f"{name}: no source for {line!r}"


def test_ascend_figures_match_the_paper():
    """910C: 2 dies, 1,504 INT8 TOPS per NPU, 196 GB/s UB per die, 3,136 GB/s UB per node."""
    hw = load_hardware("ascend-910c")
    assert hw.num_dies_per_device == 2
    assert hw.peak_flops("int8") * 2 == pytest.approx(1504e12)
    assert hw.die_link("ub").bandwidth_bytes_per_s == pytest.approx(196e9)
    assert hw.link("ub").bandwidth_bytes_per_s == pytest.approx(392e9)
    assert hw.node_link("ub").bandwidth_bytes_per_s == pytest.approx(3136e9)
    assert hw.die_link("rdma").bandwidth_bytes_per_s == pytest.approx(25e9)
    assert hw.hbm_bandwidth_bytes_per_s_per_die == pytest.approx(1.6e12)
    assert hw.decode_core_split == pytest.approx((16 / 24, 8 / 24))


def test_no_native_fp8_on_ascend():
    """The 910C has no FP8 engine: asking for it raises, naming the datatype."""
    with pytest.raises(ValueError, match="fp8"):
        load_hardware("ascend-910c").peak_flops("fp8")


def test_unknown_names_raise():
    """Unknown profiles and planes are named in the error."""
    with pytest.raises(ValueError, match="nope"):
        load_hardware("nope")
    with pytest.raises(ValueError, match="wifi"):
        load_hardware("h100").link("wifi")


def test_gpu_nvlink_figures():
    """H800's NVLink is the export-cut 200 GB/s per direction; H100's is 450."""
    assert load_hardware("h800").link("ub").bandwidth_bytes_per_s == pytest.approx(200e9)
    assert load_hardware("h100").link("ub").bandwidth_bytes_per_s == pytest.approx(450e9)


@pytest.mark.parametrize("kwargs", [{"bandwidth_bytes_per_s": 0, "latency_s": 0},
                                    {"bandwidth_bytes_per_s": 1, "latency_s": -1},
                                    {"bandwidth_bytes_per_s": 1, "latency_s": 0, "efficiency": 1.5}])
def test_link_rejects_unphysical_values(kwargs):
    """A link needs positive bandwidth, non-negative latency and efficiency in (0, 1]."""
    with pytest.raises(ValueError):
        Link(name="x", **kwargs)
