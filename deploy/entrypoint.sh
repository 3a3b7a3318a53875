#!/bin/sh
# Container entry point: `supernode ARGS...`, with the environment applied to service roles.
#
# For `serve ROLE ...` the flags below go in front of the command's own flags (argparse keeps
# the last value, so a flag in the command wins over the environment):
#   --host $SUPERNODE_BIND_HOST (127.0.0.1: loopback unless asked; compose and Kubernetes set
#       0.0.0.0 so the roles reach each other, and a cluster token, without which a role
#       refuses a non-loopback bind: SUPERNODE_CLUSTER_TOKEN or SUPERNODE_CLUSTER_TOKEN_FILE,
#       read by the process itself, never put on its command line)
#   --advertise-host $SUPERNODE_ADVERTISE_HOST (this container's hostname: unique per replica
#       and resolvable by the other containers, so `--scale decode=3` registers three workers)
#   --config $SUPERNODE_CONFIG, --log-level $SUPERNODE_LOG_LEVEL
#   --set speedup=$SUPERNODE_SPEEDUP, model=$SUPERNODE_MODEL, hardware=$SUPERNODE_HARDWARE,
#         served_model_name=$SUPERNODE_SERVED_MODEL_NAME, routing_policy=$SUPERNODE_ROUTING_POLICY,
#         num_prefill=$SUPERNODE_NUM_PREFILL, num_decode=$SUPERNODE_NUM_DECODE (the configured
#         pool sizes the scheduler's /health holds the live pools to: set them to the --scale counts),
#         model_load.source=$SUPERNODE_MODEL_LOAD
# and $SUPERNODE_ARGS (split on spaces) goes after them. Unset or empty variables add nothing.
# Any other command (`bench`, `sim`, `--help`) runs unchanged.
set -eu
if [ "${1:-}" = "serve" ] && [ $# -ge 2 ]; then
  role=$2
  shift 2
  flags="--host ${SUPERNODE_BIND_HOST:-127.0.0.1} --advertise-host ${SUPERNODE_ADVERTISE_HOST:-$(hostname)}"
  [ -n "${SUPERNODE_CONFIG:-}" ] && flags="$flags --config $SUPERNODE_CONFIG"
  [ -n "${SUPERNODE_LOG_LEVEL:-}" ] && flags="$flags --log-level $SUPERNODE_LOG_LEVEL"
  [ -n "${SUPERNODE_SPEEDUP:-}" ] && flags="$flags --set speedup=$SUPERNODE_SPEEDUP"
  [ -n "${SUPERNODE_MODEL:-}" ] && flags="$flags --set model=$SUPERNODE_MODEL"
  [ -n "${SUPERNODE_SERVED_MODEL_NAME:-}" ] && flags="$flags --set served_model_name=$SUPERNODE_SERVED_MODEL_NAME"
  [ -n "${SUPERNODE_HARDWARE:-}" ] && flags="$flags --set hardware=$SUPERNODE_HARDWARE"
  [ -n "${SUPERNODE_ROUTING_POLICY:-}" ] && flags="$flags --set routing_policy=$SUPERNODE_ROUTING_POLICY"
  [ -n "${SUPERNODE_NUM_PREFILL:-}" ] && flags="$flags --set num_prefill=$SUPERNODE_NUM_PREFILL"
  [ -n "${SUPERNODE_NUM_DECODE:-}" ] && flags="$flags --set num_decode=$SUPERNODE_NUM_DECODE"
  [ -n "${SUPERNODE_MODEL_LOAD:-}" ] && flags="$flags --set model_load.source=$SUPERNODE_MODEL_LOAD"
  set -f
  # shellcheck disable=SC2086  # word splitting of the flag strings is intended
  set -- serve "$role" $flags "$@" ${SUPERNODE_ARGS:-}
fi
exec supernode "$@"
