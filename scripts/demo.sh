#!/usr/bin/env bash
# scripts/demo.sh - install what is missing, build, and run `specssl demo`:
# generate data, pretrain, linear-evaluate, compare with a supervised
# baseline, print the table and write the plot.
#   scripts/demo.sh [--out DIR]
set -euo pipefail
. "$(dirname "$0")/common.sh"

sp_install_deps
sp_build
exec "$SP_BUILD_DIR/specssl" demo "$@"
