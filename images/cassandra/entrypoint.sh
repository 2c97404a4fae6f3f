#!/bin/bash
# Starts a single Cassandra 5.0 node in the foreground. With no arguments
# and no environment this gives a working CQL server on port 9042, user
# cassandra / password cassandra (the provisioner rotates it).
set -euo pipefail

address="${CASSANDRA_ADDRESS:-$(getent hosts "$(cat /etc/hostname)" | awk '{print $1; exit}')}"
heap="${CASSANDRA_HEAP:-2G}"

sed "s/@ADDRESS@/${address}/g" /etc/cassandra/cassandra.yaml > /tmp/cassandra.yaml
mkdir -p /var/lib/cassandra/data /var/lib/cassandra/commitlog /var/lib/cassandra/saved_caches /var/lib/cassandra/hints

mapfile -t jvm_options < <(grep -v '^\s*#' /etc/cassandra/jvm17.options | grep -v '^\s*$')
exec java "-Xms${heap}" "-Xmx${heap}" "${jvm_options[@]}" ${CASSANDRA_JVM_EXTRA:-} \
    -cp '/etc/cassandra:/opt/cassandra/lib/*' \
    org.apache.cassandra.service.CassandraDaemon "$@"
