"""The offline simulator: the live system's engines, hardware model, routing policies and prefix
hashing, driven by one discrete-event loop in virtual (model) time.

kernel (heap of events) -> cluster (request lifecycle, as services/scheduler/flow.py) ->
instances (PrefillEngine / DecodeEngine priced by supernode.perf) -> runner (loadgen's
samples and arrivals in, loadgen's RunOutcome out) -> cli (`supernode sim`, bench's report).
"""
