"""The offline simulator: the request lifecycle (supernode.lifecycle) carried out in virtual
(model) time, as the live services carry it out on the wall clock.

kernel (heap of events; its time is the simulator's clock) -> driver (the lifecycle's decisions
and instances as events) -> runner (loadgen's samples and arrivals in, loadgen's accumulated
report out, memory flat) -> cli (`supernode sim`, bench's report) and sweep (`--sweep`, local
processes or Ray). The simulator makes no decision of its own (tests/test_layering.py).
"""
