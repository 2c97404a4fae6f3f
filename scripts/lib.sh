# Shared helpers for the scripts in this folder. Sourced, never run.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

# Build outputs live outside the clone so a fresh clone on the same machine
# (CI) reuses the compiled dependencies and the resolved Cassandra jars.
PROVISION_CACHE="${PROVISION_CACHE:-$HOME/.cache/provision}"
export PROVISION_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PROVISION_CACHE/target}"
RUST_TARGET="x86_64-unknown-linux-gnu"
export RELEASE_BIN_DIR="$CARGO_TARGET_DIR/$RUST_TARGET/release"

# How the test scripts call cargo test. The end-to-end tests of tests/ only
# orchestrate engines, nodes and clients, so their crate (provision-testkit)
# is compiled at opt-level 1: its two dozen test binaries are the longest
# part of a clean build. The crates they drive (the provisioner, ingest,
# gateway-sim, ...) stay at the release profile's level.
TEST_CARGO_FLAGS=(--release --locked --config 'profile.release.package.provision-testkit.opt-level=1')

# The classic builder: images here are FROM scratch or FROM a locally
# imported base, and no BuildKit frontend can be pulled on this network.
export DOCKER_BUILDKIT=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# step NAME COMMAND...: runs one setup step and prints how long it took.
step() {
    local name="$1"
    shift
    local started_ns ms
    started_ns=$(date +%s%N)
    log "→ $name"
    "$@"
    ms=$(( ($(date +%s%N) - started_ns) / 1000000 ))
    log "✓ $name ($((ms / 1000)).$(printf '%03d' $((ms % 1000))) s)"
}

# quiet COMMAND...: runs a command, showing its output only if it fails.
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "error: failed: $*" >&2
        return 1
    fi
}

docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# image_label IMAGE LABEL: prints the label's value, or nothing if the image is missing.
image_label() {
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# inputs_hash DIR [NAME...]: a stable hash of the files under DIR (or of the
# named files in it), by their paths relative to DIR, so every clone agrees.
inputs_hash() {
    local dir="$1"
    shift
    (cd "$dir" && find "${@:-.}" -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

# The Debian mirror this machine's apt already uses, so debootstrap goes
# where apt goes (the JRE base image, the Swarm test bed's node image).
debian_mirror() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then
        uri=$(awk '/^deb / && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    echo "$uri"
}
