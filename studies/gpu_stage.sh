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
start=$SECONDS
cd "$(dirname "$0")/.."  # the repository root: surrogates/ and the package are read from there
data=${WORK:+$WORK/}data runs=${WORK:+$WORK/}runs  # under WORK if given (tests: a temporary folder)
out=${OUT:-$runs/gpu-stage-out}
scratch=$runs/.gpu-stage  # rate files and logs: outside $OUT, which brings back 8 files at most
mkdir -p "$out" "$data" "$runs" "$scratch"
rm -f "$scratch"/*
log=$out/gpu_stage.log
exec > >(tee -a "$log") 2>&1
tee_pid=$!
# (plain `wait` would also wait for the tee above: wait for the jobs started here by their PIDs)
pids=()
wait_all() { local p status=0; for p in "${pids[@]}"; do wait "$p" || status=1; done; pids=(); return $status; }

names=${NAMES:-cr10 cr50}
if [[ -n ${SMOKE:-} ]]; then  # the whole pipeline on this CPU at toy size, in fp32 (bf16 is emulated
  # on CPUs without AMX / AVX512-BF16, minutes per step; its code path is tested in tests/training/test_loop.py)
  dev=${DEV:-cpu}; size=9; ref_scale=50; count_max=${COUNT:-40}; gen_s=${GEN_S:-10}
  read -ra precision <<< "${PRECISION:---channels-last}"
  # the smoke test checks the pipeline, not the timing: a far deadline (no cap fires on a slow or
  # shared machine) and a short training plan (TRAIN_S seconds)
  deadline=${DEADLINE:-600}; train_s=${TRAIN_S:-15}; probe_n=8; batch=4; tag=smoke; eval_max=10; val_max=10
  reserve=${RESERVE:-100}; bench_min=15; train_min=40; after_gen=150; fill=0.85
else
  dev=${DEV:-cuda}; size=31; ref_scale=1; count_max=${COUNT:-16000}; gen_s=${GEN_S:-100}
  read -ra precision <<< "${PRECISION:---amp --channels-last}"  # the stage's precision flags
  deadline=${DEADLINE:-540}; probe_n=512; batch=${BATCH:-32}; tag=gpu; eval_max=400; val_max=255
  reserve=${RESERVE:-100}  # seconds kept for steps 4-6
  bench_min=40             # step 6 runs only with this much time left
  train_min=40             # at least this much training time after the probes
  after_gen=150            # the fresh data must leave this much for the probes and the training
  fill=0.85                # of the training budget the plan fills (0.75 for a single, partial epoch)
  train_s=${TRAIN_S:-}     # plan for this many training seconds instead of all the time left
fi
lr=${LR:-4e-4}
loss=${LOSS:-mse}
elapsed() { echo $((SECONDS - start)); }
left() { echo $((deadline - SECONDS + start)); }
say() { echo "[gpu_stage $(elapsed) s] $*"; }

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if command -v rln-design > /dev/null; then
  rln=(rln-design)
else  # the GPU image: the package's dependencies are there, the package itself is not installed
  rln=(python3 -c 'import sys; from rln_design.cli import main; sys.exit(main(prog_name="rln-design"))')
fi
# capped SECONDS ARGS: the CLI under a time cap. --foreground: one SIGINT to the command only (GNU timeout
# otherwise signals it and then its process group again, and a second SIGINT stops train without saving)
capped() { local cap=$1; shift; timeout --foreground -k 10 -s INT "$(( cap > 5 ? cap : 5 ))" "${rln[@]}" "$@"; }
say "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(getconf _NPROCESSORS_ONLN) cores"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import sys, torch, numpy; print("python", sys.version.split()[0], "torch", torch.__version__,
  "numpy", numpy.__version__, "cuda", torch.cuda.is_available())'
"${rln[@]}" --version || { say "rln_design does not import here"; exit 1; }

setup() {  # setup NAME -> contrast, reference count and seed, fresh seed
  case $1 in
    cr10) contrast=10; ref_count=2560; ref_seed=31;   fresh_seed=2531 ;;
    cr50) contrast=50; ref_count=1280; ref_seed=1031; fresh_seed=3531 ;;
    *) echo "unknown surrogate $1 (cr10 or cr50)" >&2; exit 2 ;;
  esac
  ref_count=$((ref_count / ref_scale / 5 * 5))
}

gen() {  # gen FILE COUNT SEED SPLIT CAP: on the device; CPU workers resume it if that fails or overruns
  local common=(--contrast "$contrast" --count "$2" --size $size --realizations 5 --seed "$3" --split "$4"
                --out "$1" --quiet)
  [[ -f $1 ]] && return 0
  local t0=$SECONDS
  capped "$5" generate "${common[@]}" --device "$dev" --chunk-size "${CHUNK:-256}" && return 0
  say "generate $1 on $dev failed or overran $5 s; CPU workers resume it"
  capped $(( $5 - SECONDS + t0 + 30 )) generate "${common[@]}"
}

# 1. reference data, both contrasts side by side; the time of each gives its FE rate
for name in $names; do
  (setup $name; t0=$SECONDS; gen $data/${name}_$size.h5 $ref_count $ref_seed 0.4,0.2,0.4 $(( $(left) / 3 )) \
     && echo "$ref_count $((SECONDS - t0))" > "$scratch/rate_$name") &
  pids+=($!)
done
wait_all
say "reference data done"

# 2. fresh training data, sized by the measured FE rate
for name in $names; do
  [[ -f $scratch/rate_$name ]] || { say "$name: no reference data; skipped"; continue; }
  read -r n t < "$scratch/rate_$name"
  fresh=$(( n * gen_s / (t > 0 ? t : 1) / 5 * 5 ))
  fresh=$(( fresh > count_max ? count_max : fresh )); fresh=$(( fresh < 5 ? 5 : fresh ))
  say "$name: FE $n structures in $t s -> $fresh fresh structures"
  cap=$(( gen_s * 3 / 2 + 20 )); room=$(( $(left) - reserve - after_gen ))
  (( room < cap )) && cap=$room
  (( cap < 30 )) && { say "$name: no time for fresh data"; continue; }
  (setup $name; gen $data/${name}_${size}g.h5 "$fresh" $fresh_seed 1,0,0 $cap) &
  pids+=($!)
done
wait_all
say "fresh data done"
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
  capped $2 train $(train_args $1 $runs/$1-$tag-probe reference) --epochs 2 --max-train-samples $probe_n \
    --max-val-samples 8 --lr $lr --warmup-steps 10 --seed 99 >> "$scratch/probe_$1.log" 2>&1
}
probe_cap=$(( ($(left) - reserve - train_min) / 2 )); probe_cap=$(( probe_cap > 90 ? 90 : probe_cap ))
for name in "${active[@]}"; do
  (probe $name $probe_cap; rc=$?
   # an error (not the time cap, 124) with the stage's precision: probe and stage in fp32
   if (( rc != 0 && rc != 124 )); then
     say "$name: probe failed with ${precision[*]}: $(grep -m1 -E 'Error|error' "$scratch/probe_$name.log")"
     say "$name: probe and stage in fp32"; touch "$scratch/fp32_$name"; probe $name $probe_cap
   fi) &
  pids+=($!)
done
wait_all
# 3b. the stage: epochs to fill the time left, side by side
budget=$(( $(left) - reserve )); budget=$(( budget < 20 ? 20 : budget ))
plan_s=$budget; [[ -n $train_s ]] && (( train_s < budget )) && plan_s=$train_s
say "training budget $budget s, planned for $plan_s s"
for name in "${active[@]}"; do
  rate=$(python3 -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; print(rows[-1]["samples_per_s"])' \
         $runs/$name-$tag-probe/metrics.jsonl) || { say "$name: probe failed"; tail -20 "$scratch/probe_$name.log"; continue; }
  files=($data/${name}_$size.h5); [[ -f $data/${name}_${size}g.h5 ]] && files+=($data/${name}_${size}g.h5)
  n_train=$(python3 -c 'import sys; from rln_design.data import split_rows; print(sum(len(split_rows(p, "train")) for p in sys.argv[1:]))' \
            "${files[@]}")
  plan=$(python3 -c 'import sys; rate, budget, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
load = n * 0.003 * (int(sys.argv[4]) / 31) ** 3  # reading the HDF5 files: ~2-3.5 ms per 31^3 structure here
usable = max(budget - load - 30, 0.2 * budget)  # 30 s: import, CUDA start-up, cuDNN algorithm search
fill = float(sys.argv[5])  # the rest: validation passes, rate noise
steps = rate * usable * fill
if steps < 2 * n:  # one (partial) epoch: an overrun would leave no completed epoch, keep more margin
    steps = rate * usable * (fill - 0.1)
print(max(1, int(steps // n)), min(n, max(64, int(steps))))' "$rate" "$plan_s" "$n_train" "$size" "$fill")
  read -r epochs samples <<< "$plan"
  limit=()
  (( samples < n_train )) && limit=(--max-train-samples $samples)
  say "$name: probe rate $rate structures/s, $n_train training structures -> $epochs epoch(s) ${limit[*]}"
  rm -rf $runs/$name-$tag
  capped $budget train $(train_args $name $runs/$name-$tag) --epochs $epochs "${limit[@]}" \
    --max-val-samples $val_max --lr $lr --warmup-steps 100 --seed 16 > "$scratch/train_$name.log" 2>&1 &
  pids+=($!)
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
  python3 -c 'import json, os, sys; from rln_design.data import read_attrs
print(json.dumps({p: read_attrs(p) for p in sys.argv[1:] if os.path.exists(p)}, indent=1))' \
    $data/${name}_${size}g.h5 $data/${name}_$size.h5 > $run/data_attrs.json
  pack $name
  if [[ -f $run/best.pt ]] && (( cap < 20 )); then
    say "$name: no time left for the evaluations"
  elif [[ -f $run/best.pt ]]; then
    capped $cap evaluate --model surrogates/$name-rln/model.pt --model $run/best.pt --ensemble 1 \
      --data $data/${name}_$size.h5 --split validation --max-samples $val_max --no-baselines --device $dev \
      --no-progress --out $run/select.json > $run/select.txt 2>&1
    capped $cap evaluate --model surrogates/$name-rln/model.pt --model $run/best.pt --ensemble 4 --ensemble 1 \
      --precision fp32 --data $data/${name}_$size.h5 --split test --max-samples $eval_max --no-baselines \
      --device $dev --no-progress --out $run/evaluation.json > $run/evaluation.txt 2>&1
    grep -v -e Warning -e "p = _numpy" $run/select.txt $run/evaluation.txt
  else
    say "$name: no completed epoch (no best.pt); the tar holds last.pt and the logs"
    tail -20 $run/train_$name.log
  fi
  pack $name  # again, with the evaluations
}
for name in "${active[@]}"; do finish $name & pids+=($!); done
wait_all

# 6. if time is left: surrogate and FE speed on this device (studies/gpu_benchmark.py)
if (( $(left) > bench_min )); then
  bench=(--device $dev --out "$out/gpu_benchmark.md" --repeats 3 --fe-batch 32)
  [[ -n ${SMOKE:-} ]] && bench+=(--grid 9 --batches 1,4 --fe-batch 4 --repeats 2 --precisions fp32)
  timeout --foreground -k 5 -s INT $(( $(left) - 5 )) python3 studies/gpu_benchmark.py "${bench[@]}" > "$scratch/bench.log" 2>&1 \
    && say "benchmark written" || { say "benchmark failed or overran"; tail -5 "$scratch/bench.log"; }
fi
say "done; $(ls "$out" | tr '\n' ' ')"
exec 1>&- 2>&-  # let the tee write the last lines, then end
wait "$tee_pid"
