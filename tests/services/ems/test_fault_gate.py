"""The ems_unreachable gate covers every EmsService RPC and refuses them while it is shut."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import CollectorRegistry

from services.ems.fault_gate import GatedEmsServicer
from supernode.v1 import supernode_pb2 as pb
from supernode.v1 import supernode_pb2_grpc as pb_grpc


def rpc_names() -> list[str]:
    return [m.name for m in pb.DESCRIPTOR.services_by_name["EmsService"].methods]


def test_every_ems_rpc_is_gated() -> None:
    """Each RPC the proto declares is overridden by the gate (none falls through to the
    generated UNIMPLEMENTED base, nor bypasses the fault)."""
    for name in rpc_names():
        assert getattr(GatedEmsServicer, name) is not getattr(pb_grpc.EmsServiceServicer, name)


class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None

    def time_remaining(self) -> float:
        return 0.1

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise _Aborted(details)


class _Inner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def ModelStatus(self, request, context):
        self.calls.append("ModelStatus")
        return pb.ModelStatusResponse()

    async def LoadModel(self, request, context):
        self.calls.append("LoadModel")
        yield pb.ModelLoadEvent()


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_model_rpcs_are_refused_while_unreachable_and_served_after(mode: str) -> None:
    """While the fault lasts a model call is answered UNAVAILABLE without reaching EMS
    (blackhole: after the caller's deadline); once cleared it is served."""
    inner = _Inner()
    gate = GatedEmsServicer(inner, CollectorRegistry())  # type: ignore[arg-type]
    gate.set_mode(mode)
    context = _Context()
    with pytest.raises(_Aborted):
        await gate.ModelStatus(pb.ModelImageRequest(), context)
    with pytest.raises(_Aborted):
        async for _ in gate.LoadModel(pb.LoadModelRequest(), context):
            pass
    assert context.code is grpc.StatusCode.UNAVAILABLE and inner.calls == []
    gate.set_mode(None)
    await gate.ModelStatus(pb.ModelImageRequest(), _Context())
    assert [e async for e in gate.LoadModel(pb.LoadModelRequest(), _Context())]
    assert inner.calls == ["ModelStatus", "LoadModel"]
