"""Degraded link planes: every transfer on a slowed plane takes `factor` times as long."""

from __future__ import annotations

import pytest

from supernode.config import load_config
from supernode.deployment import instance_deployment
from supernode.hardware import PLANES, load_hardware
from supernode.hardware.degrade import PLANE_ROLES, degrade_links, role_slowdowns, slowed_link
from supernode.perf import DecodeBatch, decode_step_time, transfer_time


def test_every_plane_has_its_roles() -> None:
    """Each plane name the fault API accepts maps to link roles the profiles define."""
    assert set(PLANE_ROLES) == set(PLANES)
    assert all(set(roles) <= set(PLANES) for roles in PLANE_ROLES.values())


@pytest.mark.parametrize("num_bytes", [0, 4096, 64 * 2**20])
def test_a_slowed_link_takes_factor_times_as_long_for_any_size(num_bytes: int) -> None:
    """Latency x factor and bandwidth / factor: small and bulk messages both slow by factor."""
    link = load_hardware("ascend-910c").link("rdma")
    base = transfer_time(num_bytes, link).total_s
    slow = transfer_time(num_bytes, slowed_link(link, 4.0)).total_s
    assert slow == pytest.approx(4.0 * base)
    assert slowed_link(link, 4.0).name == "rdma"


def test_physical_planes_slow_the_roles_they_carry_and_factors_compound() -> None:
    """UB carries EMS-over-UB reads, VPC EMS-over-VPC; two faults on one plane multiply."""
    assert role_slowdowns({"ub": 2.0}) == {"ub": 2.0, "ems_ub": 2.0}
    assert role_slowdowns({"vpc": 3.0, "ems_vpc": 2.0}) == {"vpc": 3.0, "ems_vpc": 6.0}
    assert role_slowdowns({"rdma": 1.0}) == {}


@pytest.mark.parametrize("bad", [{"nvlink": 2.0}, {"ub": 0.5}, {"ub": float("inf")}])
def test_bad_planes_and_factors_are_refused_by_name(bad: dict) -> None:
    """An unknown plane or a factor below 1 (a speed-up) raises ValueError naming it."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        degrade_links(load_hardware("ascend-910c"), bad)


def test_degrading_leaves_the_other_planes_and_the_original_alone() -> None:
    """Only the slowed roles change; the input spec is untouched; no fault returns it as is."""
    hw = load_hardware("ascend-910c")
    slow = degrade_links(hw, {"rdma": 5.0})
    assert slow.link("ub") == hw.link("ub") and slow.link("rdma") != hw.link("rdma")
    assert hw.link("rdma").latency_s == load_hardware("ascend-910c").link("rdma").latency_s
    assert slow.node_link("rdma").bandwidth_bytes_per_s == pytest.approx(
        hw.node_link("rdma").bandwidth_bytes_per_s / 5.0)
    assert degrade_links(hw, {}) is hw


def test_a_slow_ub_plane_slows_the_decode_step_and_rdma_does_not() -> None:
    """Decode's MoE dispatch/combine run on UB: a 10x slower UB plane lengthens the modelled
    step (and so TPOT); decode sends nothing on RDMA, so slowing RDMA leaves it alone."""
    config = load_config(None)
    deployment = instance_deployment(config, "decode")
    batch = DecodeBatch(16, 2048.0)
    base = decode_step_time(batch, deployment)
    slow_ub = decode_step_time(batch, deployment.replace(
        hardware=degrade_links(deployment.hardware, {"ub": 10.0})))
    slow_rdma = decode_step_time(batch, deployment.replace(
        hardware=degrade_links(deployment.hardware, {"rdma": 10.0})))
    assert slow_ub.total_s > 1.2 * base.total_s
    assert slow_rdma.total_s == pytest.approx(base.total_s)
