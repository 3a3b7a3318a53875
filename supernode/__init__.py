"""supernode: an emulator of disaggregated LLM serving (CloudMatrix-Infer)."""

__version__ = "0.1.0"
