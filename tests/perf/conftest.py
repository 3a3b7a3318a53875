"""Factories for the hardware-model tests."""

import pytest

from supernode.perf import Deployment


def paper_decode(**changes) -> Deployment:
    """The paper's decode instance: 160 NPUs, DP320, EP320, MTP 1 at 70%."""
    fields = {"dp": 320, "ep": 320, "mtp_tokens": 1, "mtp_acceptance": 0.7} | changes
    return Deployment.build("ascend-910c", "deepseek-r1", 160, **fields)


def paper_prefill(**changes) -> Deployment:
    """The paper's prefill instance: 16 NPUs, EP32, MTP module on."""
    fields = {"ep": 32, "mtp_tokens": 1} | changes
    return Deployment.build("ascend-910c", "deepseek-r1", 16, **fields)


@pytest.fixture
def decode_deployment() -> Deployment:
    return paper_decode()


@pytest.fixture
def prefill_deployment() -> Deployment:
    return paper_prefill()
