#!/usr/bin/env bash
# Gradient-loop ablation: the old step size and unscreened starts against the new defaults.
#
#   bash studies/gradient_starts.sh      # ~60 min of one core -> studies/gradient_starts_<arm>.md
#
# The design benchmark's surrogate-gradient strategy (cr10, 31^3, seeds 0 1 2, 3 restarts each,
# FE verification of all 3 final designs) on the two peak-strain presets, with Adam's step size
# and the start screening varied; everything else at the CLI defaults. The defaults themselves
# (lr 0.4, 16 screened starts) are the arm of studies/design_benchmark_gradient.md (all presets).
# One core; re-running skips finished arms.
set -euo pipefail
cd "$(dirname "$0")/.."
arm() {  # arm LABEL LR RAW_SAMPLES
  local md=studies/gradient_starts_$1.md
  [[ -f $md ]] && return 0
  python studies/design_benchmark.py --surrogate cr10 --grid 31 --seeds 0 1 2 --targets peak peak_vf \
    --strategies surrogate-gradient --set lr="$2" --set raw_samples="$3" --out "$md" \
    --scratch "studies/_scratch/gradient_starts/$1" > "studies/_scratch/gradient_starts_$1.log" 2>&1
}
mkdir -p studies/_scratch
arm lr0.15_raw0 0.15 0
arm lr0.4_raw0 0.4 0
arm lr0.15_raw16 0.15 16
