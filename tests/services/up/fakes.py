"""A runtime that runs nothing: it records what it is asked and shows instances as told."""

from __future__ import annotations

from services.runtime.base import Instance, InstanceNotFound, Unsupported


class FakeRuntime:
    name = "fake"
    endpoint = "http://127.0.0.1:1"

    def __init__(self, pools: dict[str, int], can_disconnect: bool = True) -> None:
        self.states: dict[str, tuple[str, str]] = {"scheduler": ("scheduler", "running")}
        for role, n in pools.items():
            for i in range(n):
                self.states[f"{role}-{i}"] = (role, "running")
        self.calls: list[tuple[str, str]] = []
        self.can_disconnect = can_disconnect
        self.supervised: list[tuple[float, bool]] = []

    def instances(self) -> list[Instance]:
        return [Instance(name, role, str(i), state)
                for i, (name, (role, state)) in enumerate(self.states.items())]

    def _need(self, name: str) -> None:
        if name not in self.states or self.states[name][1] == "stopping":
            raise InstanceNotFound(name)

    def start_instance(self, role: str, name: str) -> None:
        assert name not in self.states
        self.calls.append(("start", name))
        self.states[name] = (role, "running")

    def stop_instance(self, name: str) -> None:
        self._need(name)
        self.calls.append(("stop", name))
        self.states[name] = (self.states[name][0], "stopping")

    def _act(self, what: str, name: str, state: str) -> None:
        self._need(name)
        self.calls.append((what, name))
        self.states[name] = (self.states[name][0], state)

    def kill_instance(self, name: str) -> None:
        self._act("kill", name, "running")

    def pause_instance(self, name: str) -> None:
        self._act("pause", name, "paused")

    def resume_instance(self, name: str) -> None:
        self._act("resume", name, "running")

    def disconnect_instance(self, name: str) -> None:
        if not self.can_disconnect:
            raise Unsupported("not here")
        self._act("disconnect", name, "disconnected")

    def reconnect_instance(self, name: str) -> None:
        self._act("reconnect", name, "running")

    def supervise(self, now_s: float, restart: bool) -> None:
        self.supervised.append((now_s, restart))
