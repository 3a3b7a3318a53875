"""Batching state machines of the prefill and decode instances, and the worker registry.

Pure: no sockets, no clock reads. The services drive them and wait on the injected clock.
"""
