"""Shared test set-up: make scripts/ importable for the code-generation check."""

import importlib.util
import sys
from pathlib import Path

_GEN = Path(__file__).resolve().parent.parent / "scripts" / "gen_proto.py"
_spec = importlib.util.spec_from_file_location("scripts_gen", _GEN)
assert _spec and _spec.loader
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
sys.modules.setdefault("scripts_gen", _module)
