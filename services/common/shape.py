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


def deployment_from_shape(shape: pb.InstanceShape) -> Deployment:
    """The Deployment a registered shape describes (ValueError/KeyError on unknown profiles
    or an inconsistent shape). Enough to price the instance's weights and loads."""
    return Deployment.build(
        shape.hardware, shape.model, shape.num_devices, dp=shape.dp or None,
        tp=shape.tp or None, ep=shape.ep or None, quant=shape.quant or "int8",
        microbatch=shape.microbatch, mtp_tokens=shape.mtp_tokens,
        mtp_acceptance=shape.mtp_acceptance)
