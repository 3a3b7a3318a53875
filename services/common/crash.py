"""What a worker does when its engine loop dies: say so, and stop the whole process.

A dead batch or step loop would leave every request on the instance waiting forever while
heartbeats kept it "healthy". Stopping the process (SIGTERM to itself, the normal clean
shutdown) closes its streams and lets its lease lapse, so the scheduler fails its requests
over to other instances.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)


def stop_process_if_crashed(task: asyncio.Task[None]) -> None:
    """Done-callback for an engine loop task that should run until cancelled."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical("%s died; stopping this worker so its requests fail over", task.get_name(),
                 exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)
