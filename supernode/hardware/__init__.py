"""Hardware specifications (devices, dies, links) loaded from data files.

``load_hardware("ascend-910c")`` returns a frozen ``HardwareSpec``; every constant in the
profile files cites its source (spec sheet or the calibration notes).
"""

from supernode.hardware.kv_centric import LOCAL_DRAM_LINK
from supernode.hardware.loader import available_hardware, hardware_from_dict, load_hardware
from supernode.hardware.spec import EP_PATHS, PLANES, EpPaths, HardwareSpec, Link, OpCosts

__all__ = ["EP_PATHS", "LOCAL_DRAM_LINK", "PLANES", "EpPaths", "HardwareSpec", "Link", "OpCosts",
           "available_hardware", "hardware_from_dict", "load_hardware"]
