#!/bin/sh
# Container entrypoint: bring the state DB's schema up to date, then become the daemon.
# Arguments go to `cdc-sync run` (e.g. --interval 30 --log-json). `exec` makes cdc-sync the
# process that receives SIGTERM from `docker stop`, so it stops cleanly.
set -eu

attempts=${CDC_SYNC_UPGRADE_ATTEMPTS:-30}
attempt=1
# The state DB's server may still be starting (compose, Kubernetes): wait for it a while.
until cdc-sync db upgrade; do
    if [ "$attempt" -ge "$attempts" ]; then
        echo "entrypoint: could not upgrade the state DB after $attempt attempts; giving up" >&2
        exit 1
    fi
    echo "entrypoint: state DB not ready (attempt $attempt of $attempts); retrying in 2 s" >&2
    attempt=$((attempt + 1))
    sleep 2
done

exec cdc-sync run "$@"
