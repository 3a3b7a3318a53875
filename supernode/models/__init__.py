"""Model architecture specifications loaded from data files (``load_model("deepseek-r1")``)."""

from supernode.models.loader import available_models, load_model
from supernode.models.spec import DTYPE_BYTES, ModelSpec, dtype_bytes

__all__ = ["DTYPE_BYTES", "ModelSpec", "available_models", "dtype_bytes", "load_model"]
