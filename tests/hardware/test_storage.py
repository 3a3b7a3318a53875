"""Storage tiers: every profile has a cited [storage] table; the paper's figures are there."""

import pytest

from supernode.hardware import available_hardware, load_hardware
from supernode.hardware.storage import load_storage, storage_from_dict


def test_every_profile_has_storage_tiers():
    """Each shipped profile defines the OBS bucket, the host path and the EMS pool size."""
    for name in available_hardware():
        storage = load_storage(name)
        assert storage.obs_bucket.effective_bandwidth_bytes_per_s > 0
        assert storage.host_to_device.effective_bandwidth_bytes_per_s > 0
        assert storage.ems_pool_num_nodes >= 1


def test_ascend_storage_figures_match_the_paper():
    """One 2.5 GB/s OBS bucket (P3 s4.4.3); 151 GB/s NPU->CPU reads per die (P2 Table 1);
    the CPU side of UB, 160 GB/s per node, the same figure the EMS KV fetch uses (notes s7.2);
    a 48-node EMS pool."""
    s = load_storage("ascend-910c")
    assert s.obs_bucket.bandwidth_bytes_per_s == pytest.approx(2.5e9)
    assert s.host_to_device.bandwidth_bytes_per_s == pytest.approx(2 * 151e9)
    assert s.host_node_bandwidth_bytes_per_s == pytest.approx(160e9)
    hardware = load_hardware("ascend-910c")
    assert s.host_node_bandwidth_bytes_per_s == \
        hardware.source_bandwidth_bytes_per_s_per_node["ems_ub"]
    assert s.ems_pool_host_bandwidth_bytes_per_s == pytest.approx(48 * 160e9)


def test_bad_tables_and_names_raise():
    """An unknown profile, a missing field or an unphysical value is an error naming it."""
    with pytest.raises(ValueError, match="nope"):
        load_storage("nope")
    table = {"obs_bucket": {"bandwidth_bytes_per_s": 1, "latency_s": 0},
             "host_to_device": {"bandwidth_bytes_per_s": 1, "latency_s": 0,
                                "node_bandwidth_bytes_per_s": 8},
             "ems_pool_num_nodes": 0}
    with pytest.raises(ValueError, match="ems_pool_num_nodes"):
        storage_from_dict(table)
    with pytest.raises(KeyError):
        storage_from_dict({k: v for k, v in table.items() if k != "obs_bucket"})
