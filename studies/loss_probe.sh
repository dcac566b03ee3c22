#!/usr/bin/env bash
# Loss probe for a next CPU training stage: does fine-tuning on the metric itself (mean absolute
# error, --loss mae) lower the validation MASE more than the paper's MSE for the same compute?
#
#   bash studies/loss_probe.sh cr10      # ~40 min on a 2-core AVX2 EPYC -> studies/loss_probe_cr10.md
#   SAMPLES=600 LR=2e-4 bash studies/loss_probe.sh cr10   # the defaults spelled out
#   LR=1e-4 TAG=_lr1e-4 bash studies/loss_probe.sh cr10   # -> runs/lossprobe-cr10_lr1e-4, studies/loss_probe_cr10_lr1e-4.md
#
# Needs data/<name>_31.h5 from studies/train_shipped_surrogates.sh. Two one-pass fine-tunes from
# the shipped weights (surrogates/<name>/model.pt) over the same 600 of 1,000 fresh 31^3 structures
# (a probe seed outside the shipped stages' seeds), side by side, one core each, identical except
# the loss: mse (paper, every shipped stage) and mae. bf16 mixed precision with channels_last_3d
# weights, as stages 8-13, on a CPU with native bf16 (AMX / AVX512-BF16); elsewhere both arms run in
# fp32 (emulated bf16 is several times slower than fp32). Then the starting weights and both results
# on the 255 validation structures the stage choices used (plain network, fp32, same structures for
# all three, so the comparison is paired). Re-running skips finished steps.
set -euo pipefail
name=${1:?usage: loss_probe.sh cr10|cr50}
case $name in
  cr10) contrast=10; seed=2331 ;;
  cr50) contrast=50; seed=3331 ;;
  *) echo "unknown surrogate $name (cr10 or cr50)" >&2; exit 2 ;;
esac
tag=${TAG:-}
out=runs/lossprobe-$name$tag
start=surrogates/$name/model.pt
lr=${LR:-2e-4}
samples=${SAMPLES:-600}
precision=()
grep -q -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null && precision=(--amp --channels-last)
mkdir -p "$out"
[[ -f data/${name}_31n.h5 ]] || rln-design generate --contrast $contrast --count 1000 --size 31 \
  --realizations 5 --seed $seed --split 1,0,0 --workers 2 --out data/${name}_31n.h5
arm() {  # arm LOSS
  [[ -f $out/$1/metrics.jsonl ]] && return 0
  rln-design train --data data/${name}_31n.h5 --max-train-samples "$samples" --val-data data/${name}_31.h5 \
    --max-val-samples 48 --init-from "$start" --out "$out/$1" --model rln --epochs 1 --batch-size 8 --lr "$lr" \
    --schedule step --warmup-steps 20 --augment --seed 15 --threads 1 --device cpu "${precision[@]}" \
    --loss "$1" --no-progress > "$out/$1.log" 2>&1
}
arm mse & arm mae & wait
[[ -f $out/evaluation.json ]] || rln-design evaluate --model "$start" --model "$out/mse/best.pt" \
  --model "$out/mae/best.pt" --ensemble 1 --data data/${name}_31.h5 --split validation --max-samples 255 --no-baselines \
  --threads 2 --no-progress --out "$out/evaluation.json" > "$out/evaluation.txt"
{
  echo "# Loss probe for a next CPU stage ($name, lr $lr)"
  echo
  echo "- command: \`SAMPLES=$samples LR=$lr${tag:+ TAG=$tag} bash studies/loss_probe.sh $name\` (rln-design $(rln-design --version | awk '{print $NF}'), $(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo "- start: \`$start\` (shipped weights); data: $samples of 1,000 fresh 31^3 structures (seed $seed), one pass, lr $lr,"
  echo "  batch 8, per-step cosine, 20-step warmup, augmentation, precision ${precision[*]:-fp32}, train seed 15, one core per arm"
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(getconf _NPROCESSORS_ONLN) cores"
  echo "- wall s per arm: $(for a in mse mae; do printf '%s %s, ' $a "$(python -c "import json,sys; print(round(sum(json.loads(l)['time_s'] for l in open(sys.argv[1]))))" "$out/$a/metrics.jsonl")"; done | sed 's/, $//')"
  echo "- scored: \`rln-design evaluate --ensemble 1 --split validation --max-samples 255\` on data/${name}_31.h5"
  echo
  echo '```'
  cat "$out/evaluation.txt"
  echo '```'
} > "$out/report.md"
mv "$out/report.md" "studies/loss_probe_$name$tag.md"
echo "wrote studies/loss_probe_$name$tag.md"
