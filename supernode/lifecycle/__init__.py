"""The request lifecycle, written once: the decisions about a request (scheduler), the
instances' batching and timing (prefill, decode), and the prefix-cache rules (cache).

Two drivers carry it out: the live services (services/: gRPC, HTTP, real bytes, a wall clock
scaled by `speedup`) and the offline simulator (supernode/sim: events in virtual time). Neither
makes a decision of its own; docs/architecture.md shows how a new policy or stage is added once
for both.
"""
