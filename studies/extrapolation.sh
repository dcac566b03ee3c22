#!/usr/bin/env bash
# How the shipped surrogates do outside their training box: grains longer than the box's 16 voxels
# along x (gx in [16, 31], log-uniform; gy, gz, vf in the default box), the region that
# `rln-design optimize --box gx=1:31` (the README's hard peak target) searches. 200 fresh test-only
# structures per contrast (40 Latin-hypercube design points x 5 realizations, seeds 9031 / 9131,
# outside every training seed series), FE-solved, then `rln-design evaluate` of the shipped
# surrogate (plain network and the default 4-pass ensemble, fp32), and of the mean-field baseline
# (y = 1: its MASE is the mean |FE - 1|, the size of the fluctuations there is to predict; the MKS
# baseline needs a training split, which this file has none of).
#
#   bash studies/extrapolation.sh   # ~15 min on one core; -> studies/extrapolation_<name>{,_meanfield}.json
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
for name in cr10 cr50; do
  case $name in cr10) contrast=10; seed=9031 ;; cr50) contrast=50; seed=9131 ;; esac
  test -f data/${name}_31_gx16-31.h5 || rln-design generate --contrast $contrast --count 200 --size 31 --realizations 5 --seed $seed \
    --box gx=16:31 --split 0,0,1 --workers 1 --quiet --out data/${name}_31_gx16-31.h5
  rln-design evaluate --model $name --data data/${name}_31_gx16-31.h5 --split test --ensemble 1 \
    --ensemble 4 --no-baselines --threads 1 --no-progress --out studies/extrapolation_$name.json
  rln-design evaluate --data data/${name}_31_gx16-31.h5 --split test --no-progress \
    --out studies/extrapolation_${name}_meanfield.json
done
