#!/bin/sh
# Creates the secrets docker-compose.yml and deploy/k8s read, once (existing ones are kept):
#   SECRETS_DIR/cluster_token   every role's cluster token (compose secret `cluster_token`)
#   SECRETS_DIR/admin_key       the scheduler's admin key; Prometheus scrapes with it
#   K8S_ENV                     the same two as `cluster-token=`/`admin-key=` lines, for the
#                               kustomize secretGenerator `supernode-auth` (deploy/k8s)
# Usage: deploy/make-secrets.sh [SECRETS_DIR [K8S_ENV]]
#        (defaults: deploy/secrets and deploy/k8s/auth.env; both are git-ignored)
# Each secret is 32 random bytes in hex. The directory is private to you (0700); the files are
# 0644 because compose bind-mounts them into containers that run as other users (10001,
# Prometheus), and files mounted that way keep their host mode.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/secrets}
k8s_env=${2:-$here/k8s/auth.env}

random_hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

mkdir -p "$dir"
chmod 700 "$dir"
for name in cluster_token admin_key; do
  if [ ! -s "$dir/$name" ]; then
    (umask 022 && random_hex > "$dir/$name")
    echo "make-secrets: wrote $dir/$name" >&2
  fi
  chmod 644 "$dir/$name"
done
if [ ! -s "$k8s_env" ]; then
  (umask 077 && printf 'cluster-token=%s\nadmin-key=%s\n' \
      "$(cat "$dir/cluster_token")" "$(cat "$dir/admin_key")" > "$k8s_env")
  echo "make-secrets: wrote $k8s_env" >&2
fi
