#!/usr/bin/env bash
# A GPU training stage of the shipped surrogates in ONE call of the device tool (issue 3's accuracy
# goal; issue 5). Prepared and smoke-tested on CPU; run it when a session is lent a GPU:
#
#   device tool:  run(command="bash studies/gpu_stage.sh", timeout_s=600)
#                 -> $OUT/cr10.tar, $OUT/cr50.tar (best.pt, logs, evaluations), $OUT/gpu_stage.log
#   here (CPU):   SMOKE=1 OUT=/tmp/gpu-smoke bash studies/gpu_stage.sh     # same pipeline, tiny (~4 min)
#
# The GPU machine (/work/.library/device) installs nothing, keeps nothing between calls (it is warm
# for 30 s), lends ~15 minutes of device time per session and returns only 8 files of $OUT. So
# everything happens in this one command, planned against a wall-clock DEADLINE (s since start):
#  1. the reference data data/<name>_31.h5 (the shipped surrogates' training/validation/test file:
#     same count and seed as studies/train_shipped_surrogates.sh, so the same test structures),
#     FE-solved batched on the GPU (`rln-design generate --device cuda`; CPU workers if that fails);
#  2. fresh training data data/<name>_31g.h5 (seeds 2531 / 3531, split 1,0,0): as many structures as
#     the FE rate measured in step 1 fits in GEN_S seconds, at most COUNT;
#  3. a probe run per surrogate measures the training rate (side by side on the one GPU); then one
#     run per surrogate, side by side, from the shipped weights (surrogates/<name>/model.pt), bf16
#     autocast + channels_last_3d, batch 32, per-step cosine from LR, over the fresh structures plus
#     the reference file's training split, for as many epochs as the measured rate fits in the time
#     left (at least one; a partial epoch if not even one fits);
#  4. shipped and new weights on the 255 validation structures the CPU stages were chosen on, and on
#     the test split (400 structures, plain network and 4-pass ensemble, fp32): the two evaluations
#     studies/ship_surrogate.py and the README need;
#  5. per surrogate one tar in $OUT (best.pt, config, metrics, evaluations, data attributes).
# Back here: `tar -xf <files_at>/<name>.tar -C runs`, compare, and ship with studies/ship_surrogate.py as
# docs/training.md says (the card describes the fresh data from the attributes the checkpoint recorded).
set -uo pipefail
start=$SECONDS
cd "$(dirname "$0")/.."  # the repository root: surrogates/ and the package are read from there
data=${WORK:+$WORK/}data runs=${WORK:+$WORK/}runs  # under WORK if given (tests: a temporary folder)
out=${OUT:-$runs/gpu-stage-out}
mkdir -p "$out" "$data" "$runs"
log=$out/gpu_stage.log
exec > >(tee -a "$log") 2>&1
# (plain `wait` would also wait for the tee above: wait for the jobs started here by their PIDs)
pids=()
wait_all() { local p status=0; for p in "${pids[@]}"; do wait "$p" || status=1; done; pids=(); return $status; }

names=${NAMES:-cr10 cr50}
if [[ -n ${SMOKE:-} ]]; then  # the whole pipeline on this CPU at toy size
  dev=${DEV:-cpu}; size=9; ref_scale=50; count_max=${COUNT:-40}; gen_s=${GEN_S:-20}
  deadline=${DEADLINE:-240}; probe_n=16; batch=4; tag=smoke; precision=(); eval_max=10; val_max=10
  reserve=${RESERVE:-30}
else
  dev=${DEV:-cuda}; size=31; ref_scale=1; count_max=${COUNT:-16000}; gen_s=${GEN_S:-100}
  deadline=${DEADLINE:-540}; probe_n=1024; batch=${BATCH:-32}; tag=gpu; precision=(--amp --channels-last)
  eval_max=400; val_max=255
fi
lr=${LR:-4e-4}
loss=${LOSS:-mse}
reserve=${reserve:-${RESERVE:-70}}  # seconds kept for step 4 and the tars
elapsed() { echo $((SECONDS - start)); }
say() { echo "[gpu_stage $(elapsed) s] $*"; }

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if command -v rln-design > /dev/null; then
  rln_cmd=(rln-design)
else  # the GPU image: the package's dependencies are there, the package itself is not installed
  rln_cmd=(python3 -c 'import sys; from rln_design.cli import main; sys.exit(main(prog_name="rln-design"))')
fi
rln() { "${rln_cmd[@]}" "$@"; }
say "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(getconf _NPROCESSORS_ONLN) cores"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import sys, torch, numpy; print("python", sys.version.split()[0], "torch", torch.__version__,
  "numpy", numpy.__version__, "cuda", torch.cuda.is_available())'
rln --version || { say "rln_design does not import here"; exit 1; }

setup() {  # setup NAME -> contrast, reference count and seed, fresh seed
  case $1 in
    cr10) contrast=10; ref_count=2560; ref_seed=31;   fresh_seed=2531 ;;
    cr50) contrast=50; ref_count=1280; ref_seed=1031; fresh_seed=3531 ;;
    *) echo "unknown surrogate $1 (cr10 or cr50)" >&2; exit 2 ;;
  esac
  ref_count=$((ref_count / ref_scale / 5 * 5))
}

gen() {  # gen NAME FILE COUNT SEED SPLIT: on the device, CPU workers if that fails (same config: resumes)
  local common=(--contrast "$contrast" --count "$3" --size $size --realizations 5 --seed "$4" --split "$5"
                --out "$2" --quiet)
  [[ -f $2 ]] && return 0
  rln generate "${common[@]}" --device "$dev" --chunk-size "${CHUNK:-256}" \
    || { say "generate on $dev failed; CPU workers"; rln generate "${common[@]}"; }
}

# 1. reference data, both contrasts side by side; the time of each gives its FE rate
for name in $names; do
  (setup $name; t0=$SECONDS; gen $name $data/${name}_$size.h5 $ref_count $ref_seed 0.4,0.2,0.4 \
     && echo "$ref_count $((SECONDS - t0))" > "$out/.rate_$name") &
  pids+=($!)
done
wait_all
say "reference data done"

# 2. fresh training data, sized by the measured FE rate
for name in $names; do
  [[ -f $out/.rate_$name ]] || { say "no reference data for $name"; exit 1; }
  read -r n t < "$out/.rate_$name"
  fresh=$(( n * gen_s / (t > 0 ? t : 1) / 5 * 5 ))
  fresh=$(( fresh > count_max ? count_max : fresh )); fresh=$(( fresh < 5 ? 5 : fresh ))
  echo "$fresh" > "$out/.fresh_$name"
  say "$name: FE $n structures in $t s -> $fresh fresh structures"
  (setup $name; gen $name $data/${name}_${size}g.h5 "$fresh" $fresh_seed 1,0,0) &
  pids+=($!)
done
wait_all
say "fresh data done"

train_args() {  # train_args NAME RUN_DIR
  echo --data $data/${1}_${size}g.h5 --data $data/${1}_$size.h5 --val-data $data/${1}_$size.h5 \
    --init-from surrogates/$1/model.pt --out "$2" --model rln --batch-size $batch --schedule step \
    --augment --device $dev --no-progress --loss $loss "${precision[@]}"
}

# 3a. training rate: a short probe per surrogate, side by side
for name in $names; do
  rm -rf $runs/$name-$tag-probe
  rln train $(train_args $name $runs/$name-$tag-probe) --epochs 1 --max-train-samples $probe_n \
    --max-val-samples 8 --lr $lr --warmup-steps 10 --seed 99 > "$out/probe_$name.log" 2>&1 &
  pids+=($!)
done
wait_all
# 3b. the stage: epochs to fill the time left, side by side
budget=$(( deadline - $(elapsed) - reserve )); budget=$(( budget < 10 ? 10 : budget ))
say "training budget $budget s"
for name in $names; do
  rate=$(python3 -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; print(rows[-1]["samples_per_s"])' \
         $runs/$name-$tag-probe/metrics.jsonl) || { say "$name: probe failed"; cat "$out/probe_$name.log"; continue; }
  n_train=$(python3 -c 'import sys, h5py; print(sum(int((h5py.File(p, "r")["split"][()] == 0).sum()) for p in sys.argv[1:]))' \
            $data/${name}_${size}g.h5 $data/${name}_$size.h5)
  plan=$(python3 -c 'import sys; rate, budget, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
steps = rate * budget * 0.9  # 10 % for validation passes and start-up
print(max(1, int(steps // n)), min(n, max(64, int(steps))))' "$rate" "$budget" "$n_train")
  read -r epochs samples <<< "$plan"
  limit=()
  (( samples < n_train )) && limit=(--max-train-samples $samples)
  say "$name: probe rate $rate structures/s, $n_train training structures -> $epochs epoch(s) ${limit[*]}"
  rm -rf $runs/$name-$tag
  timeout -s INT $((budget + 30)) "${rln_cmd[@]}" train $(train_args $name $runs/$name-$tag) --epochs $epochs "${limit[@]}" \
    --max-val-samples $val_max --lr $lr --warmup-steps 100 --seed 16 > "$out/train_$name.log" 2>&1 &
  pids+=($!)
done
wait_all
say "training done"

# 4. evaluations (fp32), 5. tars
for name in $names; do
  run=$runs/$name-$tag
  [[ -f $run/best.pt ]] || { say "$name: no best.pt"; tail -20 "$out/train_$name.log"; continue; }
  rln evaluate --model surrogates/$name/model.pt --model $run/best.pt --ensemble 1 --data $data/${name}_$size.h5 \
    --split validation --max-samples $val_max --no-baselines --device $dev --no-progress \
    --out $run/select.json > $run/select.txt 2>&1
  rln evaluate --model surrogates/$name/model.pt --model $run/best.pt --ensemble 4 --ensemble 1 --precision fp32 \
    --data $data/${name}_$size.h5 --split test --max-samples $eval_max --no-baselines --device $dev --no-progress \
    --out $run/evaluation.json > $run/evaluation.txt 2>&1
  cat $run/select.txt $run/evaluation.txt
  python3 -c 'import json, sys, h5py
print(json.dumps({p: {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in h5py.File(p, "r").attrs.items()}
                  for p in sys.argv[1:]}, indent=1))' $data/${name}_${size}g.h5 $data/${name}_$size.h5 > $run/data_attrs.json
  cp "$out/probe_$name.log" "$out/train_$name.log" $run/ 2>/dev/null
  tar -cf "$out/$name.tar" --exclude=last.pt --exclude='*.png' -C $runs $name-$tag
done
rm -f "$out"/.rate_* "$out"/.fresh_* "$out"/probe_*.log "$out"/train_*.log
say "done; $(ls "$out" | tr '\n' ' ')"
