"""The link a KV-centric system (Mooncake, Dynamo) reads its node-local KV cache over.

Not part of any device profile: it stands for the design the paper argues against (calibration
notes s5, "Contrast with KV-centric designs"), used by the `kv-affinity` routing policy.
"""

from __future__ import annotations

from supernode.hardware.spec import Link

LOCAL_DRAM_LINK = Link("local_pcie", bandwidth_bytes_per_s=256e9, latency_s=1.0e-6)
"""NPU <-> its own node's host DRAM in a KV-centric system. 256 GB/s is the paper's intra-node
PCIe figure for such systems (calibration notes s1.5 and s5, "Contrast with KV-centric
designs"), taken as achieved per device and the same on every hardware profile; the latency is
the measured intra-node NPU->CPU read latency (notes s1.4, P2 Table 1: 1.0 us)."""
