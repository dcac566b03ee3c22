#!/usr/bin/env bash
# Learning-rate probe for a next CPU training stage: is the 3e-4 of stages 5-7 too cautious?
#
#   bash studies/lr_probe.sh cr10      # ~30 min on 2 cores -> studies/lr_probe_cr10.md
#
# Needs the shipped stage-7 run (runs/<name>-31v/best.pt) and data/<name>_31.h5 from
# studies/train_shipped_surrogates.sh. Two one-pass fine-tunes from the stage-7 weights over the
# same 480 fresh 31^3 structures (a probe seed outside the shipped stages' seeds), side by side, one
# core each, identical except the peak learning rate: 3e-4 (stages 5-7) and 1e-3. Then the starting
# weights and both results on the 255 validation structures the stage choices used (plain network,
# same structures for all three, so the comparison is paired). Re-running skips finished steps.
set -euo pipefail
name=${1:?usage: lr_probe.sh cr10|cr50}
case $name in
  cr10) contrast=10; seed=9631 ;;
  cr50) contrast=50; seed=19631 ;;
  *) echo "unknown surrogate $name (cr10 or cr50)" >&2; exit 2 ;;
esac
out=runs/lrprobe-$name
start=runs/$name-31v/best.pt
mkdir -p "$out"
[[ -f data/${name}_31probe.h5 ]] || rln-design generate --contrast $contrast --count 480 --size 31 \
  --realizations 5 --seed $seed --split 1,0,0 --workers 2 --out data/${name}_31probe.h5
arm() {  # arm LABEL LR
  [[ -f $out/$1/metrics.jsonl ]] && return 0
  rln-design train --data data/${name}_31probe.h5 --val-data data/${name}_31.h5 --max-val-samples 48 \
    --init-from "$start" --out "$out/$1" --model rln --epochs 1 --batch-size 8 --lr "$2" \
    --schedule step --warmup-steps 20 --augment --seed 7 --threads 1 --device cpu --no-progress \
    > "$out/$1.log" 2>&1
}
arm lr3e-4 3e-4 & arm lr1e-3 1e-3 & wait
[[ -f $out/evaluation.json ]] || rln-design evaluate --model "$start" --model "$out/lr3e-4/best.pt" \
  --model "$out/lr1e-3/best.pt" --ensemble 1 --data data/${name}_31.h5 --split validation --max-samples 255 --no-baselines \
  --threads 2 --no-progress --out "$out/evaluation.json" > "$out/evaluation.txt"
{
  echo "# Learning-rate probe for a next CPU stage ($name)"
  echo
  echo "- command: \`bash studies/lr_probe.sh $name\` (rln-design $(rln-design --version | awk '{print $NF}'), $(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo "- start: \`$start\` (shipped stage 7); data: 480 fresh 31^3 structures (seed $seed), one pass,"
  echo "  batch 8, per-step cosine, 20-step warmup, augmentation, train seed 7, one core per arm"
  echo "- wall s per arm: $(for a in lr3e-4 lr1e-3; do printf '%s %s, ' $a "$(python -c "import json,sys; print(round(sum(json.loads(l)['time_s'] for l in open(sys.argv[1]))))" "$out/$a/metrics.jsonl")"; done | sed 's/, $//')"
  echo "- scored: \`rln-design evaluate --ensemble 1 --split validation --max-samples 255\` on data/${name}_31.h5"
  echo
  echo '```'
  cat "$out/evaluation.txt"
  echo '```'
} > "$out/report.md"
mv "$out/report.md" "studies/lr_probe_$name.md"
echo "wrote studies/lr_probe_$name.md"
