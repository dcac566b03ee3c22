#!/usr/bin/env bash
# Ablation of the CPU recipe's choices at equal CPU time (contrast 10, from scratch).
#
#   bash studies/ablation_cpu_recipe.sh          # ~2.7 h on 2 cores; needs data/cr10_16.h5, cr10_31.h5
#   python studies/ablation_report.py            # -> studies/ablation_cpu_recipe.md
#
# Every arm trains the paper's RLN (N = 5, k = 2, width 16) from random weights for the same CPU
# budget: one training process per core, one thread each, two arms side by side, so one 31^3
# sample-step (~2 CPU s) costs about what six 16^3 sample-steps cost (studies/training_cost.md).
#   A  16^3 periodic volumes, 2 x 2304 sample-steps, augmentation        (small volumes only)
#   B  31^3 structures, 1 x 768 sample-steps, augmentation               (deployment grid only)
#   C  16^3 for 2 x 1152 sample-steps, then 31^3 for 384 (recipe shape: small volumes, then fine-tune)
#   D  as A without augmentation                                          (what augmentation buys)
#   Every arm runs with two seeds to show seed-to-seed spread.
# All arms: batch 8, Adam lr 2e-3 (fine-tune 1e-3), per-step cosine annealing, 20-step warmup
# (10 in the short fine-tune), best epoch on the same 48 31^3 validation structures. The arms are
# then scored side by side by `rln-design evaluate` on 200 31^3 test structures.
set -euo pipefail
# Re-running the script skips every arm that already logged all its epochs (metrics.jsonl), so an
# interrupted ablation or a newly added arm costs only the missing runs.
out=${OUT:-runs/ablation}
threads=1
mkdir -p "$out"
common=(--model rln --batch-size 8 --schedule step --device cpu --threads $threads
        --val-data data/cr10_31.h5 --max-val-samples 48)
finished() {  # run-dir epochs
  [[ -f $1/best.pt && -f $1/metrics.jsonl ]] && (( $(wc -l < "$1/metrics.jsonl") >= $2 ))
}
arm16() {  # name seed samples augment-flag
  finished "$out/$1" 2 && return 0
  rln-design train --data data/cr10_16.h5 --max-train-samples "$3" --epochs 2 --lr 2e-3 \
    --warmup-steps 20 "$4" --seed "$2" --out "$out/$1" "${common[@]}" > "$out/$1.log" 2>&1
}
arm31() {  # name seed samples
  finished "$out/$1" 1 && return 0
  rln-design train --data data/cr10_31.h5 --max-train-samples "$3" --epochs 1 --lr 2e-3 \
    --warmup-steps 20 --augment --seed "$2" --out "$out/$1" "${common[@]}" > "$out/$1.log" 2>&1
}
armC() {  # seed
  arm16 C-16-s$1 "$1" 1152 --augment
  finished "$out/C-s$1" 1 && return 0
  rln-design train --data data/cr10_31.h5 --max-train-samples 384 --epochs 1 --lr 1e-3 \
    --warmup-steps 10 --augment --seed "$1" --init-from "$out/C-16-s$1/best.pt" --out "$out/C-s$1" \
    "${common[@]}" > "$out/C-s$1.log" 2>&1
}
arm16 A-s0 0 2304 --augment & arm31 B-s0 0 768 & wait
armC 0 & arm16 D-s0 0 2304 --no-augment & wait
arm16 A-s1 1 2304 --augment & arm31 B-s1 1 768 & wait
armC 1 & arm16 D-s1 1 2304 --no-augment & wait
models=()
for arm in A-s0 A-s1 B-s0 B-s1 C-s0 C-s1 D-s0 D-s1; do
  [[ -f $out/$arm/best.pt ]] && models+=(--model "$out/$arm/best.pt")
done
rln-design evaluate "${models[@]}" --data data/cr10_31.h5 --split test --max-samples 200 \
  --threads 2 --no-progress --out "$out/evaluation.json"
