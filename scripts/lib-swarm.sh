# Shared helpers of scripts/swarm-up and scripts/swarm-down: the 3-node
# Docker Swarm test bed. Sourced after lib.sh, never run.
# shellcheck shell=bash
# shellcheck disable=SC2034 # constants the sourcing scripts use

# Everything the bed creates on the host engine carries this label, and
# swarm-down removes exactly what carries it.
BED_LABEL="io.provision.swarm-bed"
BED_NETWORK="provision-swarm-bed"
BED_SUBNET="10.231.0.0/24"
BED_GATEWAY="10.231.0.1"
BED_REGISTRY_NAME="provision-swarm-registry"
BED_REGISTRY_IP="10.231.0.10"
BED_REGISTRY_VOLUME="provision-swarm-registry"
# Where the nodes pull from, and where the host engine pushes to (a loopback
# registry is insecure-allowed by default: no daemon.json change).
BED_REGISTRY="$BED_REGISTRY_IP:5000"
BED_REGISTRY_HOST="127.0.0.1:15000"
BED_NODES=(provision-swarm-1 provision-swarm-2 provision-swarm-3)
BED_NODE_IPS=(10.231.0.11 10.231.0.12 10.231.0.13)
BED_MANAGER_IP="${BED_NODE_IPS[0]}"
BED_ENV_DIR="/run/provision-swarm"
BED_ENV_FILE="$BED_ENV_DIR/env"

SWARM_NODE_IMAGE="provision/swarm-node:bookworm"
SWARM_ROOTFS_IMAGE="provision/swarm-node-rootfs:bookworm"

# The images the bed serves to its nodes (the names scripts/setup builds,
# with the same overrides), and the node image itself for checks.
bed_images() {
    echo "${PROVISION_INGEST_IMAGE:-provision/ingest:dev}"
    echo "${PROVISION_ADMIN_IMAGE:-provision/admin:dev}"
    echo "${PROVISION_NOTIFIER_IMAGE:-provision/notifier:dev}"
    echo "${PROVISION_CASSANDRA_IMAGE:-provision/cassandra:5.0}"
    echo "${PROVISION_FRONT_IMAGE:-provision/front:dev}"
    echo "$SWARM_NODE_IMAGE"
}

# The host engine: never a bed node (swarm-up refuses DOCKER_HOST on the bed).
require_host_engine() {
    case "${DOCKER_HOST:-}" in
        *10.231.0.*) echo "error: DOCKER_HOST=$DOCKER_HOST is a bed node; unset it (the bed runs on the host engine)" >&2; exit 1 ;;
    esac
    if ! docker_answers; then
        echo "error: no Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}; run scripts/setup first" >&2
        exit 1
    fi
}

# node_docker IP ARG...: the docker CLI against one bed node's engine.
node_docker() {
    local ip="$1"
    shift
    DOCKER_HOST="tcp://$ip:2375" docker "$@"
}

node_answers() { node_docker "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# container_state NAME: running, exited, created, ... or nothing if missing.
container_state() { docker container inspect --format '{{.State.Status}}' "$1" 2>/dev/null || true; }

# container_is_bed NAME: the container exists and carries the bed label.
container_is_bed() {
    [ "$(docker container inspect --format "{{ index .Config.Labels \"$BED_LABEL\" }}" "$1" 2>/dev/null)" = 1 ]
}

# The capabilities the Docker CLI knows, by number. A node gets all of them
# but those this machine's bounding set lacks: on some hosts (a VM whose init
# drops CAP_SYS_RESOURCE) `--privileged` fails with "unable to apply caps",
# so the nodes get the privileged container's powers one by one instead.
BED_CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ)

# node_power_flags: docker run flags for a node: every capability the host
# can grant, no seccomp/AppArmor profile, /proc and /sys unmasked, every
# device allowed (the node's entrypoint remounts /sys and the cgroups rw).
node_power_flags() {
    local bnd i
    bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
    printf '%s\n' --cap-add ALL
    for i in "${!BED_CAPS[@]}"; do
        if (( ((16#$bnd) >> i & 1) == 0 )); then
            printf '%s\n' --cap-drop "${BED_CAPS[$i]}"
        fi
    done
    printf '%s\n' --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm'
}
