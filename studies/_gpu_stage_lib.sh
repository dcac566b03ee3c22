# The parts studies/gpu_stage.sh (v1 RLN) and studies/gpu_stage_v2.sh (v2 pcg-net) share: sourced, not
# run, by both, after `set -uo pipefail` and with `stage` set to the script's name (gpu_stage or
# gpu_stage_v2). Sourcing it starts the stage:
#  - the working directory becomes the repository root (surrogates/, studies/ and the package are
#    read from there); data/ and runs/ are put under WORK if given (tests: a temporary folder);
#  - $OUT (default runs/<stage>-out, with dashes) gets the log <stage>.log, a copy of all output; rate
#    files and logs go to runs/.<stage> (outside $OUT, which brings back 8 files at most);
#  - the parameters both stages share, for SMOKE=1 (the whole pipeline on this CPU at toy size, a far
#    deadline so that no cap fires on a slow or shared machine) or the GPU; the script sets the rest;
#  - `rln` is the CLI: `rln-design` where it is on PATH, else `python3 -c` (the GPU image has the
#    package's dependencies but not the package installed); the machine, the versions and that
#    rln_design imports are logged (the stage ends, status 1, if it does not).
# The functions below: time (elapsed, left, say, capped), jobs side by side (side, wait_all), the two
# data steps (reference_data, fresh_data: setup and gen), the training plan (probe_cap_s, training_budget,
# plan_run), data_attrs, stage_end.
start=$SECONDS
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${WORK:+$WORK/}data runs=${WORK:+$WORK/}runs
out=${OUT:-$runs/${stage//_/-}-out}
scratch=$runs/.${stage//_/-}
mkdir -p "$out" "$data" "$runs" "$scratch"
rm -f "$scratch"/*
log=$out/$stage.log
exec > >(tee -a "$log") 2>&1
tee_pid=$!
# (plain `wait` would also wait for the tee above: wait for the jobs started here by their PIDs)
pids=()
side() { "$@" & pids+=($!); }  # side CMD...: CMD in the background, side by side with the others
wait_all() { local p status=0; for p in "${pids[@]}"; do wait "$p" || status=1; done; pids=(); return $status; }

names=${NAMES:-cr10 cr50}
if [[ -n ${SMOKE:-} ]]; then
  dev=${DEV:-cpu}; size=9; ref_scale=50; count_max=${COUNT:-40}; gen_s=${GEN_S:-10}
  deadline=${DEADLINE:-600}; probe_n=8; eval_max=10; val_max=10; fill=0.85
else
  dev=${DEV:-cuda}; size=31; ref_scale=1; count_max=${COUNT:-16000}
  deadline=${DEADLINE:-540}; train_s=${TRAIN_S:-}; batch=${BATCH:-32}; eval_max=400; val_max=255
  after_gen=150            # the fresh data must leave this much for the probes and the training
  fill=0.85                # of the training budget the plan fills (0.75 for a single, partial epoch)
fi
elapsed() { echo $((SECONDS - start)); }
left() { echo $((deadline - SECONDS + start)); }
say() { echo "[$stage $(elapsed) s] $*"; }

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if command -v rln-design > /dev/null; then
  rln=(rln-design)
else  # the GPU image: the package's dependencies are there, the package itself is not installed
  rln=(python3 -c 'import sys; from rln_design.cli import main; sys.exit(main(prog_name="rln-design"))')
fi
# capped SECONDS CMD...: under a time cap. --foreground: one SIGINT to the command only (GNU timeout
# otherwise signals it and then its process group again, and a second SIGINT stops train without saving)
capped() { local cap=$1; shift; timeout --foreground -k 10 -s INT "$(( cap > 5 ? cap : 5 ))" "$@"; }
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
  local common=(--contrast "$contrast" --count "$2" --grid $size --realizations 5 --seed "$3" --split "$4"
                --out "$1" --quiet)
  [[ -f $1 ]] && return 0
  local t0=$SECONDS
  capped "$5" "${rln[@]}" generate "${common[@]}" --device "$dev" --chunk-size "${CHUNK:-256}" && return 0
  say "generate $1 on $dev failed or overran $5 s; CPU workers resume it"
  capped $(( $5 - SECONDS + t0 + 30 )) "${rln[@]}" generate "${common[@]}"
}

reference_one() {  # reference_one NAME: its reference file; its time gives the FE rate (runs/.<stage>/rate_NAME)
  setup $1
  local t0=$SECONDS
  gen $data/${1}_$size.h5 $ref_count $ref_seed 0.4,0.2,0.4 $(( $(left) / 3 )) \
    && echo "$ref_count $((SECONDS - t0))" > "$scratch/rate_$1"
}
reference_data() {  # step 1: data/<name>_<size>.h5, both contrasts side by side; the time of each gives its FE rate
  local name
  for name in $names; do side reference_one $name; done
  wait_all
  say "reference data done"
}

fresh_one() { setup $1; gen $data/${1}_${size}g.h5 "$2" $fresh_seed 1,0,0 $3; }  # fresh_one NAME COUNT CAP
fresh_data() {  # step 2: data/<name>_<size>g.h5, sized by the FE rate measured in step 1
  local name n t fresh cap room
  for name in $names; do
    [[ -f $scratch/rate_$name ]] || { say "$name: no reference data; skipped"; continue; }
    read -r n t < "$scratch/rate_$name"
    fresh=$(( n * gen_s / (t > 0 ? t : 1) / 5 * 5 ))
    fresh=$(( fresh > count_max ? count_max : fresh )); fresh=$(( fresh < 5 ? 5 : fresh ))
    say "$name: FE $n structures in $t s -> $fresh fresh structures"
    cap=$(( gen_s * 3 / 2 + 20 )); room=$(( $(left) - reserve - after_gen ))
    (( room < cap )) && cap=$room
    (( cap < 30 )) && { say "$name: no time for fresh data"; continue; }
    side fresh_one $name "$fresh" $cap
  done
  wait_all
  say "fresh data done"
}

probe_cap_s() {  # the cap of each probe: half of what the training minimum leaves, at most 90 s
  local cap=$(( ($(left) - reserve - train_min) / 2 ))
  echo $(( cap > 90 ? 90 : cap ))
}

training_budget() {  # -> budget (the runs' cap: all the time left but the reserve), plan_s (what they plan for)
  budget=$(( $(left) - reserve )); budget=$(( budget < 20 ? 20 : budget ))
  plan_s=$budget; [[ -n $train_s ]] && (( train_s < budget )) && plan_s=$train_s
  say "training budget $budget s, planned for $plan_s s"
}

plan_run() {  # plan_run LABEL NAME PROBE_DIR PROBE_LOG -> rate, n_train, epochs, limit (status 1: no probe rate)
  # the probe's warmed-up (second) epoch gives the rate; the epochs of the reference file's training
  # split plus the fresh structures that fill plan_s at that rate (a partial epoch if not even one fits)
  local files samples
  rate=$(python3 -c 'import json, sys; rows = [json.loads(l) for l in open(sys.argv[1])]; print(rows[-1]["samples_per_s"])' \
         "$3/metrics.jsonl") || { say "$1: probe failed"; tail -20 "$4"; return 1; }
  files=($data/${2}_$size.h5); [[ -f $data/${2}_${size}g.h5 ]] && files+=($data/${2}_${size}g.h5)
  n_train=$(python3 -c 'import sys; from rln_design.data import split_rows; print(sum(len(split_rows(p, "train")) for p in sys.argv[1:]))' \
            "${files[@]}")
  read -r epochs samples <<< "$(python3 -c 'import sys; rate, budget, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
load = n * 0.003 * (int(sys.argv[4]) / 31) ** 3  # reading the HDF5 files: ~2-3.5 ms per 31^3 structure
usable = max(budget - load - 30, 0.2 * budget)  # 30 s: import, CUDA start-up, cuDNN algorithm search
fill = float(sys.argv[5])  # the rest: validation passes, rate noise, runs sharing the GPU
steps = rate * usable * fill
if steps < 2 * n:  # one (partial) epoch: an overrun would leave no completed epoch, keep more margin
    steps = rate * usable * (fill - 0.1)
print(max(1, int(steps // n)), min(n, max(64, int(steps))))' "$rate" "$plan_s" "$n_train" "$size" "$fill")"
  limit=()
  (( samples < n_train )) && limit=(--max-train-samples $samples)
  say "$1: probe rate $rate structures/s, $n_train training structures -> $epochs epoch(s) ${limit[*]}"
}

data_attrs() {  # data_attrs NAME: the attributes of the fresh and the reference file, as JSON
  python3 -c 'import json, os, sys; from rln_design.data import read_attrs
print(json.dumps({p: read_attrs(p) for p in sys.argv[1:] if os.path.exists(p)}, indent=1))' \
    $data/${1}_${size}g.h5 $data/${1}_$size.h5
}

stage_end() {  # the last line of the log, then the end of the tee
  say "done; $(ls "$out" | tr '\n' ' ')"
  exec 1>&- 2>&-  # let the tee write the last lines, then end
  wait "$tee_pid"
}
