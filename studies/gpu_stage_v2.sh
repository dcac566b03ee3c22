#!/usr/bin/env bash
# The GPU stage of the v2 surrogates (issue 34) in ONE call of the device tool. Prepared and
# smoke-tested on CPU (tests/studies/test_gpu_stage.py); run it when a session is lent a GPU:
#
#   device tool:  run(command="bash studies/gpu_stage_v2.sh", timeout_s=600)
#                 -> $OUT/gpu_benchmark.md, $OUT/cr10-v2.tar, $OUT/cr50-v2.tar, $OUT/gpu_stage_v2.log
#                 (if `status` or the reply gives a limit_s under 600, pass DEADLINE=<limit_s - 60>;
#                 NAMES=cr10 trains contrast 10 only)
#   here (CPU):   SMOKE=1 OUT=/tmp/v2-smoke bash studies/gpu_stage_v2.sh     # same pipeline, tiny (~1 min)
#
# The shipped defaults cr10 / cr50 are kind `pcg` (N exact PCG steps, no weights; N = 4 / 6). The
# trainable v2 kind `pcg-net` adds a learned periodic displacement correction whose output layer
# starts at zero, so a pcg-net of the shipped N starts exactly AT the shipped surrogate: training it
# can only move it from there, and the validation split picks the best epoch. The GPU machine
# (/work/.library/device) installs nothing, keeps nothing between calls, lends ~15 minutes of device
# time per session and returns only 8 files of $OUT, so everything happens in this one command against
# a wall-clock DEADLINE (s since start), every step under a time cap:
#  0. first, the speed figures the README needs: studies/gpu_benchmark.py -> $OUT/gpu_benchmark.md
#     (shipped cr10 / cr50, kind pcg, fp32, and the study's pcg-net, fp32 / bf16, at batch 1, 8,
#     32, 128, beside the batched torch FE `solve_fe(..., device="cuda")` on the same structures);
#  1. the reference data data/<name>_31.h5 (the shipped surrogates' file: same count and seed as
#     studies/train_shipped_surrogates.sh, so the same validation and test structures), FE-solved
#     batched on the GPU (`rln-design generate --device cuda`; CPU workers resume the file if that
#     fails or overruns its cap);
#  2. fresh training data data/<name>_31g.h5 (seeds 2531 / 3531, split 1,0,0): as many structures as
#     the FE rate measured in step 1 fits in GEN_S seconds, at most COUNT;
#  3. the arms, side by side on the one GPU (a short probe of each gives its rate, then one run each
#     for as many epochs as the rate fits in the time left; `rln-design train --model pcg-net`, MAE
#     loss, per-step cosine from LR, batch BATCH, fp32 unless PRECISION=--amp), over the fresh
#     structures plus the reference file's training split:
#       <name>/pcgnet<N>:   N = the shipped surrogate's steps (4 / 6), corrector from zero (= shipped);
#       cr10/pcgnet2-init:  N = 2 from the study's best weights (studies/surrogate_v2_pcgnet_best.pt,
#                           `--init-from`; contrast 10 only, as those weights);
#  4. per contrast, on the same structures, plain network, fp32: the shipped surrogate, the study's
#     pcg-net (contrast 10) and every arm's best.pt, on the 400-structure test subset (evaluation.json)
#     and the 255-structure validation subset (select.json) of the reference file (`rln-design evaluate`);
#  5. per contrast one tar in $OUT (the arms' best.pt, config, metrics, logs, the evaluations, the data
#     attributes; last.pt instead of best.pt when no epoch completed).
# Back here: `tar -xf <files_at>/cr10-v2.tar -C runs`, read evaluation.txt, and ship an arm only if it
# beats the shipped surrogate on the test split (docs/training.md, "GPU stage").
set -uo pipefail
stage=gpu_stage_v2
# the start shared with gpu_stage.sh: the repository root, data/ and runs/ (under WORK if given), the
# log $OUT/gpu_stage_v2.log, the CLI (rln), the shared parameters and the functions
source "$(dirname "${BASH_SOURCE[0]}")/_gpu_stage_lib.sh"
init=${INIT:-studies/surrogate_v2_pcgnet_best.pt}  # the study's pcg-net (contrast 10)
if [[ -n ${SMOKE:-} ]]; then  # a short training plan (TRAIN_S seconds)
  train_s=${TRAIN_S:-10}; batch=${BATCH:-4}
  reserve=${RESERVE:-60}; bench_s=60; train_min=20; after_gen=60
  bench=(--grid 9 --batches 1,4 --fe-batch 4 --repeats 1 --precisions fp32)
else
  gen_s=${GEN_S:-90}; probe_n=256
  reserve=${RESERVE:-90}   # seconds kept for steps 4-5
  bench_s=${BENCH_S:-120}  # cap of step 0
  train_min=60             # at least this much training time after the probes
  bench=(--batches 1,8,32,128 --fe-batch 64 --repeats 5 --precisions fp32,bf16)
fi
read -ra precision <<< "${PRECISION:-}"  # e.g. PRECISION=--amp: the corrector in bf16 autocast
lr=${LR:-1e-3}

# 0. speed first: it needs no data and is what the README's speed table waits for
bench_names=$(for name in $names; do echo -n "$name,"; done)$init
capped $(( bench_s < $(left) - 60 ? bench_s : $(left) - 60 )) python3 studies/gpu_benchmark.py --device $dev \
  --surrogate "$bench_names" --out "$out/gpu_benchmark.md" "${bench[@]}" > "$scratch/bench.log" 2>&1 \
  && say "benchmark written" || { say "benchmark failed or overran"; tail -5 "$scratch/bench.log"; }

reference_data  # 1. the reference data, both contrasts side by side; the time of each gives its FE rate
fresh_data      # 2. fresh training data, sized by the measured FE rate

# the arms: "NAME ARM N_ITER WIDTH INIT" (INIT "-" = corrector from zero, i.e. the shipped surrogate)
model_field() {  # model_field CHECKPOINT FIELD
  python3 -c 'import sys; from rln_design.training.checkpoint import load_checkpoint
print(load_checkpoint(sys.argv[1]).model_config[sys.argv[2]])' "$1" "$2"
}
arms=()
for name in $names; do
  [[ -f $data/${name}_$size.h5 ]] || continue
  n=$(model_field surrogates/$name/model.pt n_iter) || { say "$name: surrogates/$name/model.pt unreadable"; continue; }
  arms+=("$name pcgnet$n $n 16 -")
  if [[ $name == cr10 && -f $init ]]; then
    arms+=("$name pcgnet$(model_field $init n_iter)-init $(model_field $init n_iter) $(model_field $init width) $init")
  fi
done
say "arms: $(printf '%s; ' "${arms[@]}")"

train_args() {  # train_args NAME N_ITER WIDTH INIT RUN_DIR [reference]: the fresh data too unless "reference"
  local files=(--data $data/${1}_$size.h5)
  [[ -f $data/${1}_${size}g.h5 && ${6:-} != reference ]] && files=(--data $data/${1}_${size}g.h5 "${files[@]}")
  echo "${files[@]}" --val-data $data/${1}_$size.h5 --model pcg-net --n-iter $2 --width $3 \
    $([[ $4 != - ]] && echo --init-from $4) --out $5 --batch-size $batch --schedule step --loss mae \
    --device $dev --no-progress "${precision[@]}"
}

# 3a. training rate: a short probe per arm, side by side; its second epoch is warmed up
probe_cap=$(probe_cap_s)
for arm in "${arms[@]}"; do
  read -r name a n w i <<< "$arm"
  rm -rf $runs/$name-v2-probe/$a
  side capped $probe_cap "${rln[@]}" train $(train_args $name $n $w $i $runs/$name-v2-probe/$a reference) \
    --epochs 2 --max-train-samples $probe_n --max-val-samples 8 --lr $lr --warmup-steps 10 --seed 99 \
    > "$scratch/probe_$name-$a.log" 2>&1
done
wait_all
# 3b. the runs: epochs to fill the time left, side by side
training_budget
for arm in "${arms[@]}"; do
  read -r name a n w i <<< "$arm"
  plan_run $name/$a $name $runs/$name-v2-probe/$a "$scratch/probe_$name-$a.log" || continue
  rm -rf $runs/$name-v2/$a; mkdir -p $runs/$name-v2
  side capped $budget "${rln[@]}" train $(train_args $name $n $w $i $runs/$name-v2/$a) --epochs $epochs \
    "${limit[@]}" --max-val-samples $val_max --lr $lr --warmup-steps 50 --seed 16 > "$scratch/train_$name-$a.log" 2>&1
done
wait_all
say "training done"

# 4. evaluations (fp32, plain) and 5. the tar, per contrast side by side
pack() {  # pack NAME: runs/NAME-v2 -> $OUT/NAME-v2.tar (written, then renamed)
  local drop=(--exclude='*.png') a
  for a in $runs/$1-v2/*/; do [[ -f $a/best.pt ]] && drop+=(--exclude="$1-v2/$(basename $a)/last.pt"); done
  tar -cf "$out/.$1-v2.tar" "${drop[@]}" -C $runs $1-v2 && mv "$out/.$1-v2.tar" "$out/$1-v2.tar"
}
verdict() {  # verdict NAME: the arm chosen on validation against the shipped surrogate on the test split
  python3 -c 'import json, sys
name, select, test = sys.argv[1], *(json.load(open(p))["rows"] for p in sys.argv[2:])
mase = lambda rows, label: next(r["mase"]["mean"] for r in rows if r["label"].startswith(label + " "))
arms = [r["label"].split(" ")[0] for r in select if r["label"].endswith("/best.pt [ensemble 1, fp32]")]
if not arms:
    sys.exit(f"{name}: no arm has a best.pt")
arm = min(arms, key=lambda a: mase(select, a))
new, old, n = mase(test, arm), mase(test, name), test[0]["mase"]["n"]
print(f"{name}: candidate {arm} (chosen on validation: MASE {mase(select, arm):.4f} % vs shipped "
      f"{mase(select, name):.4f} %); test MASE {new:.4f} % vs shipped {name} {old:.4f} % ({new - old:+.4f}) "
      f"on the same {n} structures: " + ("beats the shipped surrogate (ship: docs/training.md)" if new < old
      else "does not beat the shipped surrogate (keep the shipped one)"))' $1 $runs/$1-v2/select.json $runs/$1-v2/evaluation.json
}
finish() {  # finish NAME
  local name=$1 dir=$runs/$1-v2 cap=$(( ($(left) - 15) / 2 )) models=(--surrogate $1) a
  mkdir -p $dir
  [[ $name == cr10 && -f $init ]] && models+=(--surrogate $init)
  for a in $dir/*/; do
    cp "$scratch/probe_$name-$(basename $a).log" "$scratch/train_$name-$(basename $a).log" $a 2>/dev/null
    [[ -f $a/best.pt ]] && models+=(--surrogate ${a%/}/best.pt) || say "$name/$(basename $a): no completed epoch (no best.pt)"
  done
  data_attrs $name > $dir/data_attrs.json
  pack $name
  if (( cap < 20 )); then
    say "$name: no time left for the evaluations"
  else
    capped $cap "${rln[@]}" evaluate "${models[@]}" --ensemble 1 --precision fp32 --data $data/${name}_$size.h5 \
      --split validation --max-samples $val_max --no-baselines --device $dev --no-progress \
      --out $dir/select.json > $dir/select.txt 2>&1
    capped $cap "${rln[@]}" evaluate "${models[@]}" --ensemble 1 --precision fp32 --data $data/${name}_$size.h5 \
      --split test --max-samples $eval_max --no-baselines --device $dev --no-progress \
      --out $dir/evaluation.json > $dir/evaluation.txt 2>&1
    grep -v -e Warning -e "p = _numpy" $dir/select.txt $dir/evaluation.txt
    verdict $name > $dir/verdict.txt && cat $dir/verdict.txt
  fi
  pack $name  # again, with the evaluations
}
for name in $names; do [[ -f $data/${name}_$size.h5 ]] && side finish $name; done
wait_all
stage_end
