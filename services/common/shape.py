"""The registry messages that describe a worker's emulated instance."""

from __future__ import annotations

from supernode.perf import Deployment
from supernode.v1 import supernode_pb2 as pb


def instance_shape(deployment: Deployment) -> pb.InstanceShape:
    d = deployment
    return pb.InstanceShape(
        hardware=d.hardware.name, model=d.model.name, num_devices=d.num_devices,
        num_dies=d.num_dies, dp=d.dp, tp=d.tp, ep=d.ep, quant=d.quant,
        microbatch=d.microbatch, mtp_tokens=d.mtp_tokens, mtp_acceptance=d.mtp_acceptance,
    )
