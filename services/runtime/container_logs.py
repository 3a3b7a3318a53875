"""Each container's output, followed into a log file per instance (as the process runtime
writes one per process), from a daemon thread that ends when the container stops."""

from __future__ import annotations

import threading
from pathlib import Path

from docker.errors import DockerException
from docker.models.containers import Container


def follow(container: Container, path: Path, since: float | None = None) -> threading.Thread:
    """Append the container's stdout and stderr to `path` from `since` (a Unix time; None:
    from its start) until it stops."""
    def copy() -> None:
        try:
            with open(path, "ab") as log:
                for chunk in container.logs(stream=True, follow=True, since=since):
                    log.write(chunk)
                    log.flush()
        except (DockerException, OSError):
            pass  # the container was removed under us: nothing more to copy

    thread = threading.Thread(target=copy, name=f"logs-{path.stem}", daemon=True)
    thread.start()
    return thread


def tail(path: Path, num_lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-num_lines:])
    except OSError:
        return ""
