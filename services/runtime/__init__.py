"""Where `supernode up` runs the instances of a deployment: one `Runtime` per kind, by name.

| name | module | instances are |
|---|---|---|
| `process` | services.runtime.process | local processes on loopback (the default) |
| `docker` | services.runtime.containers | containers of the project's image on a private network |

The contract is services.runtime.base.Runtime; adding a runtime is one module and one line
in RUNTIMES. Modules are imported only when chosen (the docker one needs the Docker SDK).
"""

from __future__ import annotations

import importlib

from services.runtime.base import Runtime, RuntimeOptions

RUNTIMES: dict[str, tuple[str, str]] = {
    "process": ("services.runtime.process", "ProcessRuntime"),
    "docker": ("services.runtime.containers", "DockerRuntime"),
}


def make_runtime(name: str, options: RuntimeOptions) -> Runtime:
    """The runtime called `name`, built from `options`; KeyError for an unknown name,
    RuntimeUnavailable when it cannot run here (the message says how to get it)."""
    module, attr = RUNTIMES[name]
    return getattr(importlib.import_module(module), attr)(options)
