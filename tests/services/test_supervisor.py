"""Restarting exited children with back-off, on a fake clock and fake processes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from services.supervisor import RestartPolicy, Supervisor, describe_exit

_pids = itertools.count(100)


@dataclass
class FakeProcess:
    returncode: int | None = None
    pid: int = field(default_factory=lambda: next(_pids))

    def poll(self) -> int | None:
        return self.returncode


@dataclass
class FakeChild:
    name: str
    process: FakeProcess = field(default_factory=FakeProcess)
    log_path: Path = Path("/tmp/x.log")


class FakeCluster:
    def __init__(self, *names: str) -> None:
        self.children = [FakeChild(n) for n in names]
        self.respawned: list[str] = []

    def respawn(self, child: FakeChild) -> None:
        child.process = FakeProcess()
        self.respawned.append(child.name)


def run(supervisor: Supervisor, start: float, end: float, step: float = 0.1) -> None:
    t = start
    while t <= end + 1e-9:
        supervisor.poll(t)
        t = round(t + step, 6)


def test_a_crashing_child_restarts_after_doubling_backoffs_up_to_the_cap() -> None:
    """A child that dies right after each start waits 0.5, 1, 2, 4, 8, 10, 10 s."""
    cluster, messages = FakeCluster("decode-0"), []
    sup = Supervisor(cluster, RestartPolicy(), messages.append, now_s=0.0)
    child = cluster.children[0]
    starts, t = [], 0.0
    for _ in range(7):
        child.process.returncode = 1
        died_at = t
        while len(cluster.respawned) == len(starts):
            sup.poll(t)
            t = round(t + 0.1, 6)
        starts.append(round(t - 0.1 - died_at, 6))
    assert starts == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert sup.num_restarts("decode-0") == 7


def test_a_child_that_ran_long_enough_starts_from_the_initial_backoff() -> None:
    """After `stable_s` up, the next exit waits the initial back-off again."""
    cluster, messages = FakeCluster("prefill-0"), []
    sup = Supervisor(cluster, RestartPolicy(stable_s=5.0), messages.append, now_s=0.0)
    child = cluster.children[0]
    for _ in range(3):  # three quick crashes: the back-off grows to 2 s
        child.process.returncode = -9
        run(sup, 0.0, 20.0)
    run(sup, 20.0, 30.0)  # up for 10 s > stable_s
    child.process.returncode = -9
    sup.poll(30.0)
    assert "restarting in 0.5s (restart 4)" in messages[-1]


def test_exits_are_reported_with_their_cause_and_a_crash_loop_loudly() -> None:
    """Each exit is reported naming the signal or code; the fifth exit within a minute is a
    crash loop, reported with the log tail; healthy siblings are left alone."""
    cluster, messages = FakeCluster("ems", "decode-0"), []
    sup = Supervisor(cluster, RestartPolicy(), messages.append, now_s=0.0,
                     log_tail=lambda path: "Traceback: boom")
    ems = cluster.children[0]
    t = 0.0
    for _ in range(5):
        ems.process.returncode = -9
        sup.poll(t)
        t += 11.0
        sup.poll(t)
    assert messages[0].startswith("ems was killed by SIGKILL; restarting in 0.5s (restart 1)")
    loud = [m for m in messages if m.startswith("!!! ems keeps crashing")]
    assert len(loud) == 1 and "Traceback: boom" in loud[0]
    assert set(cluster.respawned) == {"ems"}


def test_describe_exit() -> None:
    """Negative return codes are signals by name; others are exit codes."""
    assert describe_exit(-15) == "was killed by SIGTERM"
    assert describe_exit(3) == "exited with 3"


def test_a_child_added_while_supervised_is_restarted_too() -> None:
    """A worker started after the supervisor (`Cluster.add_worker`) is watched from the poll
    that first sees it, and restarted with the initial back-off when it exits."""
    cluster, messages = FakeCluster("decode-0"), []
    sup = Supervisor(cluster, RestartPolicy(), messages.append, now_s=0.0)
    sup.poll(1.0)
    cluster.children.append(FakeChild("decode-1"))
    sup.poll(2.0)
    cluster.children[1].process.returncode = 1
    run(sup, 2.1, 3.0)
    assert cluster.respawned == ["decode-1"] and sup.num_restarts("decode-1") == 1
    assert messages[0].startswith("decode-1 exited with 1; restarting in 0.5s")
