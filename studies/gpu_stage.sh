#!/usr/bin/env bash
# A GPU training stage of the v1 RLN surrogates (cr10-rln / cr50-rln) in ONE call of the device tool
# (issue 3's accuracy goal; issue 5). Since the shipped defaults are v2 (kind pcg), a session lent a
# GPU runs studies/gpu_stage_v2.sh first (docs/training.md, "GPU stage, v2"); this one only after it.
# Prepared and smoke-tested on CPU; run it when a session is lent a GPU:
#
#   device tool:  run(command="bash studies/gpu_stage.sh", timeout_s=600)
#                 -> $OUT/cr10.tar, $OUT/cr50.tar (best.pt, logs, evaluations), $OUT/gpu_stage.log
#                 (if `status` or the reply gives a limit_s under 600, pass DEADLINE=<limit_s - 60>)
#   here (CPU):   SMOKE=1 OUT=/tmp/gpu-smoke bash studies/gpu_stage.sh     # same pipeline, tiny (~2 min)
#
# The GPU machine (/work/.library/device) installs nothing, keeps nothing between calls (it is warm
# for 30 s), lends ~15 minutes of device time per session and returns only 8 files of $OUT. So
# everything happens in this one command, planned against a wall-clock DEADLINE (s since start),
# every step under a time cap:
#  1. the reference data data/<name>_31.h5 (the shipped surrogates' training/validation/test file:
#     same count and seed as studies/train_shipped_surrogates.sh, so the same test structures),
#     FE-solved batched on the GPU (`rln-design generate --device cuda`; CPU workers resume the file
#     if that fails or overruns its cap);
#  2. fresh training data data/<name>_31g.h5 (seeds 2531 / 3531, split 1,0,0): as many structures as
#     the FE rate measured in step 1 fits in GEN_S seconds, at most COUNT (trained without it if it
#     does not finish in time);
#  3. a probe run per surrogate (two short epochs; the second, warmed-up one gives the rate), side
#     by side on the one GPU; then one run per surrogate, side by side, from the shipped weights
#     (surrogates/<name>-rln/model.pt, the v1 RLN), bf16 autocast + channels_last_3d, batch 32, per-step cosine from
#     LR, over the fresh structures plus the reference file's training split, for as many epochs as
#     the measured rate fits in the time left (at least one; a partial epoch if not even one fits);
#     in fp32 if the probe fails with the PRECISION flags (default --amp --channels-last);
#  4. shipped and new weights on the 255 validation structures the CPU stages were chosen on, and on
#     the test split (400 structures, plain network and 4-pass ensemble, fp32): the two evaluations
#     studies/ship_surrogate.py and the README need; both surrogates side by side;
#  5. per surrogate one tar in $OUT (best.pt, config, metrics, evaluations, data attributes, logs;
#     last.pt instead when no epoch completed);
#  6. if time is left: $OUT/gpu_benchmark.md, surrogate and FE speed on the GPU (studies/gpu_benchmark.py).
# Back here: `tar -xf <files_at>/<name>.tar -C runs`, compare, and ship with studies/ship_surrogate.py as
# docs/training.md says (the card describes the fresh data from the attributes the checkpoint recorded).
set -uo pipefail
stage=gpu_stage
# the start shared with gpu_stage_v2.sh: the repository root, data/ and runs/ (under WORK if given),
# the log $OUT/gpu_stage.log, the CLI (rln), the shared parameters and the functions
source "$(dirname "${BASH_SOURCE[0]}")/_gpu_stage_lib.sh"
if [[ -n ${SMOKE:-} ]]; then  # in fp32 (bf16 is emulated on CPUs without AMX / AVX512-BF16, minutes
  # per step; its code path is tested in tests/training/test_loop.py)
  read -ra precision <<< "${PRECISION:---channels-last}"
  # the smoke test checks the pipeline, not the timing: a short training plan (TRAIN_S seconds)
  train_s=${TRAIN_S:-15}; batch=4; tag=smoke
  reserve=${RESERVE:-100}; bench_min=15; train_min=40; after_gen=150
else
  gen_s=${GEN_S:-100}
  read -ra precision <<< "${PRECISION:---amp --channels-last}"  # the stage's precision flags
  probe_n=512; tag=gpu
  reserve=${RESERVE:-100}  # seconds kept for steps 4-6
  bench_min=40             # step 6 runs only with this much time left
  train_min=40             # at least this much training time after the probes
fi
lr=${LR:-4e-4}
loss=${LOSS:-mse}

reference_data  # 1. the reference data, both contrasts side by side; the time of each gives its FE rate
fresh_data      # 2. fresh training data, sized by the measured FE rate
active=()
for name in $names; do [[ -f $data/${name}_$size.h5 ]] && active+=($name); done

train_args() {  # train_args NAME RUN_DIR [reference]: the fresh data too unless "reference"
  local files=(--data $data/${1}_$size.h5)
  [[ -f $data/${1}_${size}g.h5 && ${3:-} != reference ]] && files=(--data $data/${1}_${size}g.h5 "${files[@]}")
  echo "${files[@]}" --val-data $data/${1}_$size.h5 --init-from surrogates/$1-rln/model.pt --out "$2" \
    --model rln --batch-size $batch --schedule step --augment --device $dev --no-progress --loss $loss \
    $([[ -f $scratch/fp32_$1 ]] || echo "${precision[@]}")
}

# 3a. training rate: a short probe per surrogate, side by side; its second epoch is warmed up
# (CUDA kernels loaded, cuDNN's algorithm search done)
# (the reference file alone: the rate does not depend on the data, the loading time does). If it
# fails with bf16 + channels_last (never run on a GPU before), the probe and the stage run in fp32.
probe() {  # probe NAME CAP
  rm -rf $runs/$1-$tag-probe
  capped $2 "${rln[@]}" train $(train_args $1 $runs/$1-$tag-probe reference) --epochs 2 --max-train-samples $probe_n \
    --max-val-samples 8 --lr $lr --warmup-steps 10 --seed 99 >> "$scratch/probe_$1.log" 2>&1
}
probe_or_fp32() {  # probe_or_fp32 NAME CAP
  probe $1 $2
  local rc=$?
  # an error (not the time cap, 124) with the stage's precision: probe and stage in fp32
  if (( rc != 0 && rc != 124 )); then
    say "$1: probe failed with ${precision[*]}: $(grep -m1 -E 'Error|error' "$scratch/probe_$1.log")"
    say "$1: probe and stage in fp32"; touch "$scratch/fp32_$1"; probe $1 $2
  fi
}
probe_cap=$(probe_cap_s)
for name in "${active[@]}"; do side probe_or_fp32 $name $probe_cap; done
wait_all
# 3b. the stage: epochs to fill the time left, side by side
training_budget
for name in "${active[@]}"; do
  plan_run $name $name $runs/$name-$tag-probe "$scratch/probe_$name.log" || continue
  rm -rf $runs/$name-$tag
  side capped $budget "${rln[@]}" train $(train_args $name $runs/$name-$tag) --epochs $epochs "${limit[@]}" \
    --max-val-samples $val_max --lr $lr --warmup-steps 100 --seed 16 > "$scratch/train_$name.log" 2>&1
done
wait_all
say "training done"

# 4. evaluations (fp32) and 5. the tar, both surrogates side by side
pack() {  # pack NAME: the run folder -> $OUT/NAME.tar (written, then renamed)
  local run=$runs/$1-$tag drop=(--exclude='*.png')
  [[ -f $run/best.pt ]] && drop+=(--exclude=last.pt)
  tar -cf "$out/.$1.tar" "${drop[@]}" -C $runs $1-$tag && mv "$out/.$1.tar" "$out/$1.tar"
}
finish() {  # finish NAME
  local name=$1 run=$runs/$1-$tag cap=$(( ($(left) - 15) / 2 ))
  mkdir -p $run
  cp "$scratch/probe_$name.log" "$scratch/train_$name.log" $run/ 2>/dev/null
  data_attrs $name > $run/data_attrs.json
  pack $name
  if [[ -f $run/best.pt ]] && (( cap < 20 )); then
    say "$name: no time left for the evaluations"
  elif [[ -f $run/best.pt ]]; then
    capped $cap "${rln[@]}" evaluate --model surrogates/$name-rln/model.pt --model $run/best.pt --ensemble 1 \
      --data $data/${name}_$size.h5 --split validation --max-samples $val_max --no-baselines --device $dev \
      --no-progress --out $run/select.json > $run/select.txt 2>&1
    capped $cap "${rln[@]}" evaluate --model surrogates/$name-rln/model.pt --model $run/best.pt --ensemble 4 \
      --ensemble 1 --precision fp32 --data $data/${name}_$size.h5 --split test --max-samples $eval_max --no-baselines \
      --device $dev --no-progress --out $run/evaluation.json > $run/evaluation.txt 2>&1
    grep -v -e Warning -e "p = _numpy" $run/select.txt $run/evaluation.txt
  else
    say "$name: no completed epoch (no best.pt); the tar holds last.pt and the logs"
    tail -20 $run/train_$name.log
  fi
  pack $name  # again, with the evaluations
}
for name in "${active[@]}"; do side finish $name; done
wait_all

# 6. if time is left: surrogate and FE speed on this device (studies/gpu_benchmark.py)
if (( $(left) > bench_min )); then
  bench=(--device $dev --out "$out/gpu_benchmark.md" --repeats 3 --fe-batch 32)
  [[ -n ${SMOKE:-} ]] && bench+=(--grid 9 --batches 1,4 --fe-batch 4 --repeats 2 --precisions fp32)
  timeout --foreground -k 5 -s INT $(( $(left) - 5 )) python3 studies/gpu_benchmark.py "${bench[@]}" > "$scratch/bench.log" 2>&1 \
    && say "benchmark written" || { say "benchmark failed or overran"; tail -5 "$scratch/bench.log"; }
fi
stage_end
