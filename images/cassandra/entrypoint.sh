#!/bin/bash
# Starts a single Cassandra 5.0 node in the foreground. With no arguments
# and no environment this gives a working CQL server on port 9042, user
# cassandra / password cassandra (the provisioner rotates it).
set -euo pipefail

address="${CASSANDRA_ADDRESS:-$(getent hosts "$(cat /etc/hostname)" | awk '{print $1; exit}')}"
heap="${CASSANDRA_HEAP:-2G}"

# How the commit log reaches the disk before a write is answered:
#   group    (default) an fsync every CASSANDRA_COMMITLOG_WINDOW (5ms), each
#            write answered after the fsync that covers it;
#   periodic an fsync every CASSANDRA_COMMITLOG_WINDOW (10000ms), writes
#            answered at once (a host crash loses up to one period);
#   batch    an fsync before every answer.
commitlog_sync="${CASSANDRA_COMMITLOG_SYNC:-group}"
case "$commitlog_sync" in
    group) commitlog_window="commitlog_sync_group_window: ${CASSANDRA_COMMITLOG_WINDOW:-5ms}" ;;
    periodic) commitlog_window="commitlog_sync_period: ${CASSANDRA_COMMITLOG_WINDOW:-10000ms}" ;;
    batch) commitlog_window="" ;;
    *) echo "CASSANDRA_COMMITLOG_SYNC must be group, periodic or batch, not ${commitlog_sync}" >&2; exit 2 ;;
esac
case "${CASSANDRA_COMMITLOG_WINDOW:-5ms}" in
    *[!0-9a-z]* | "") echo "CASSANDRA_COMMITLOG_WINDOW must be a duration such as 10ms" >&2; exit 2 ;;
esac

sed -e "s/@ADDRESS@/${address}/g" \
    -e "s/@COMMITLOG_SYNC@/${commitlog_sync}/" \
    -e "s/@COMMITLOG_WINDOW@/${commitlog_window}/" \
    /etc/cassandra/cassandra.yaml > /tmp/cassandra.yaml
mkdir -p /var/lib/cassandra/data /var/lib/cassandra/commitlog /var/lib/cassandra/saved_caches /var/lib/cassandra/hints

mapfile -t jvm_options < <(grep -v '^\s*#' /etc/cassandra/jvm17.options | grep -v '^\s*$')
exec java "-Xms${heap}" "-Xmx${heap}" "${jvm_options[@]}" ${CASSANDRA_JVM_EXTRA:-} \
    -cp '/etc/cassandra:/opt/cassandra/lib/*' \
    org.apache.cassandra.service.CassandraDaemon "$@"
