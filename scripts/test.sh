#!/usr/bin/env bash
# scripts/test.sh - install what is missing, build, and run the whole test
# suite (ctest: one Check executable per module).
#   scripts/test.sh                 # normal Release build in ./build
#   SP_SANITIZE=1 scripts/test.sh   # ASan+UBSan build in ./build-asan, unit tests only
set -euo pipefail
. "$(dirname "$0")/common.sh"

sp_install_deps
if [ "${SP_SANITIZE:-0}" = 1 ]; then
    SP_BUILD_DIR=${SP_BUILD_DIR_ASAN:-$SP_ROOT/build-asan}
    sp_build -DSP_SANITIZE=ON
    cd "$SP_BUILD_DIR"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --output-on-failure -L unit -LE nosan -j 2 --timeout 600
else
    sp_build
    cd "$SP_BUILD_DIR"
    ctest --output-on-failure -j 2
fi
