# scripts/common.sh - shared by demo.sh, test.sh and bench/run.sh: install the
# Debian packages specssl needs (only the missing ones) and build it.
# Source it; it defines sp_install_deps and sp_build.

SP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SP_BUILD_DIR=${SP_BUILD_DIR:-$SP_ROOT/build}

# Build dependencies: compiler, CMake, the required stack, Check, and Open MPI
# (data-parallel pretraining; the build uses it when found, SPECSSL_MPI=AUTO).
SP_PACKAGES="build-essential cmake pkg-config libopenblas-dev libhdf5-dev libconfig-dev check openmpi-bin libopenmpi-dev"

sp_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else
        echo "error: need root or sudo to install: $*" >&2
        return 1
    fi
}

# sp_install_deps [extra packages...]: apt-get install whatever is missing.
sp_install_deps() {
    local missing=""
    for p in $SP_PACKAGES "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    if [ -n "$missing" ]; then
        echo "== installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        sp_as_root apt-get update -qq
        # shellcheck disable=SC2086
        sp_as_root apt-get install -y -qq --no-install-recommends $missing
    fi
}

# sp_build [extra cmake args...]: configure (Release) and build everything.
sp_build() {
    local jobs
    jobs=$(nproc 2>/dev/null || echo 2)
    cmake -S "$SP_ROOT" -B "$SP_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
    cmake --build "$SP_BUILD_DIR" -j "$jobs"
}
