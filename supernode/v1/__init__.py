"""Generated gRPC code for package supernode.v1 (scripts/gen_proto.py; do not edit)."""
