"""Process-level logging set-up, called from each service's entry point (never at import)."""

from __future__ import annotations

import logging


def configure_logging(role: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s",
    )
