#!/usr/bin/env bash
# The GPU measurements in one script: gpu_check, the throughput benchmark against transformers,
# short real runs of the paper and efficient presets, a resume after a kill, and torchrun's NCCL
# path. Written for a lent GPU machine whose Python has its own torch and transformers:
#
#   bash benchmarks/gpu_run.sh OUT_DIR          # from the repository root
#   PAPER=smoke EFFICIENT=smoke DEVICE=cpu GPU_RUN_BUDGET_S=300 bash benchmarks/gpu_run.sh /tmp/o
#                                                # the same steps at toy scale on a CPU (a check)
#
# Needs the prepared demo corpus in data/demo (examples/prepare_dataset.py --source demo) and,
# where the machine lacks them, the wheels of pymannkendall and ruptures in .whl/ (installed
# into /tmp/site, not into the machine's Python). Every step has a time limit and the whole
# script a deadline (GPU_RUN_BUDGET_S, default 480 s): a step that would start too late is
# skipped and recorded as such. After each step, OUT_DIR/gpu_run.tgz is rewritten with all
# results so far (reports, histories, logs; no checkpoints), so a run cut short still returns
# what it finished. OUT_DIR/gpu_run.log is the full console log.
set -u
OUT=${1:?usage: bash benchmarks/gpu_run.sh OUT_DIR}
PY=${PY:-python3}
BUDGET=${GPU_RUN_BUDGET_S:-480}
W=${GPU_RUN_WORK:-/tmp/gpu_run}
CORPUS=${CORPUS:-data/demo}
PAPER=${PAPER:-paper}
EFFICIENT=${EFFICIENT:-efficient}
DEVICE=${DEVICE:-cuda}
export PY
START=$(date +%s)
rm -rf "$W"
mkdir -p "$OUT" "$W/runs"
LOG=$OUT/gpu_run.log
: >"$LOG"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WHEELS=${WHEELS:-.whl}  # WHEELS=none: use the packages the Python has
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl >>"$LOG" 2>&1 || { echo "wheel install failed" | tee -a "$LOG"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi

pack() {  # all results so far into OUT/gpu_run.tgz (written under a temp name, then renamed)
  tar -C "$W" --exclude='checkpoints' --exclude='final' --exclude='.lock' \
    -czf "$OUT/.gpu_run.tgz.tmp" . && mv "$OUT/.gpu_run.tgz.tmp" "$OUT/gpu_run.tgz"
}

step() {  # step NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, time left); record rc and time
  local name=$1 limit=$2 left t0 rc
  shift 2
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 20 ]; then
    echo "=== $name: skipped (${left} s left of the ${BUDGET} s budget)" | tee -a "$LOG"
    echo "{\"step\": \"$name\", \"skipped\": \"budget\", \"left_s\": $left}" >>"$W/steps.jsonl"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
  t0=$(date +%s)
  if declare -F "$1" >/dev/null; then  # a function of this script: run it in a child bash
    timeout -k 5 "$limit" bash -c '"$@"' _ "$@" >>"$LOG" 2>&1
  else
    timeout -k 5 "$limit" "$@" >>"$LOG" 2>&1
  fi
  rc=$?
  echo "=== $name: rc $rc after $(($(date +%s) - t0)) s" | tee -a "$LOG"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(($(date +%s) - t0)), \"limit_s\": $limit}" \
    >>"$W/steps.jsonl"
  pack
}

environment() {
  command -v nvidia-smi >/dev/null && nvidia-smi \
    --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  $PY -c '
import json, os, platform, torch, transformers
rec = {"torch": torch.__version__, "cuda": torch.version.cuda,
       "transformers": transformers.__version__, "python": platform.python_version(),
       "cpu_count": os.cpu_count()}
if torch.cuda.is_available():
    d = torch.cuda.get_device_properties(0)
    rec.update(gpu=d.name, capability=list(torch.cuda.get_device_capability(0)),
               memory_bytes=d.total_memory, sms=d.multi_processor_count,
               cudnn=torch.backends.cudnn.version())
print(json.dumps(rec))'
}

kill_and_resume() {  # RUN_DIR CKPT_STEP ARGS...: kill -9 once checkpoint step_CKPT exists, resume
  local run=$1 at=$2 pid
  shift 2
  $PY main_train.py "$@" --run-dir "$run" &
  pid=$!
  while [ ! -d "$run/checkpoints/step_$at" ]; do
    kill -0 $pid 2>/dev/null || { echo "run ended before the kill"; return 1; }
    sleep 0.05
  done
  kill -9 $pid
  wait $pid 2>/dev/null
  echo "killed after checkpoint step_$at"
  $PY main_train.py "$@" --run-dir "$run" --resume
}
export -f environment kill_and_resume

RUN=(--set "data.corpus_dir=$CORPUS" --set run.progress=false --set run.export_final=false)

environment >"$W/environment.txt" 2>&1
tee -a "$LOG" <"$W/environment.txt"
# 1. gpu_check: device, auto precision and why, steps/s, MFU, memory, syncs, graph breaks
step gpu_check 100 $PY benchmarks/gpu_check.py --preset "$PAPER" --corpus "$CORPUS" --steps 30 \
  --warmup 5 --no-compile --json "$W/gpu_check.json"
# 2. throughput against transformers at the paper's batch: 4 x 32 (accumulated), then 128 x 1
step throughput_accum4 90 $PY benchmarks/train_throughput.py --device "$DEVICE" --corpus "$CORPUS" \
  --cases "$PAPER/pairs/bf16" "$PAPER/pairs/fp16" "$PAPER/pairs/fp32" "$EFFICIENT/packed/bf16" \
  "$EFFICIENT/packed/fp16" "$EFFICIENT/packed/fp32" --batch-size 32 --grad-accum 4 --repeats 8 \
  --warmup 2 --json "$W/throughput_accum4.json"
step throughput_b128 60 $PY benchmarks/train_throughput.py --device "$DEVICE" --corpus "$CORPUS" \
  --cases "$PAPER/pairs/bf16" "$PAPER/pairs/fp16" "$EFFICIENT/packed/bf16" \
  "$EFFICIENT/packed/fp16" --batch-size 128 --grad-accum 1 --repeats 8 --warmup 2 \
  --json "$W/throughput_b128.json"
# 3. short real runs in bf16 under a wall-clock budget, then a resume after a kill
step run_paper 75 $PY main_train.py --preset "$PAPER" "${RUN[@]}" --set run.precision=bf16 \
  --set run.max_steps=100000 --set run.time_budget_s=40 --set run.log_interval=20 \
  --set run.eval_interval=200 --set run.save_interval=100000 --run-dir "$W/runs/paper"
step run_efficient 65 $PY main_train.py --preset "$EFFICIENT" "${RUN[@]}" --set run.precision=bf16 \
  --set run.max_steps=100000 --set run.time_budget_s=30 --set run.log_interval=20 \
  --set run.eval_interval=200 --set run.save_interval=100000 --run-dir "$W/runs/efficient"
RES=(--preset "$PAPER" "${RUN[@]}" --set run.precision=bf16 --set run.max_steps=60
     --set run.save_interval=30 --set run.log_interval=10 --set run.eval_interval=30)
step resume_reference 50 $PY main_train.py "${RES[@]}" --run-dir "$W/runs/resume_a"
step resume_killed 80 kill_and_resume "$W/runs/resume_b" 30 "${RES[@]}"
step resume_compare 30 $PY benchmarks/compare_runs.py "$W/runs/resume_a" "$W/runs/resume_b" \
  --json "$W/resume_compare.json"
step resume_repeat 50 $PY main_train.py "${RES[@]}" --run-dir "$W/runs/resume_a2"
step resume_repeat_compare 30 $PY benchmarks/compare_runs.py "$W/runs/resume_a" \
  "$W/runs/resume_a2" --json "$W/repeat_compare.json"
# 4. torchrun with one process: the process group, DDP and NCCL
step torchrun_nccl 60 $PY -m torch.distributed.run --standalone --nproc_per_node 1 main_train.py \
  --preset "$PAPER" "${RUN[@]}" --set run.max_steps=20 --set run.log_interval=10 \
  --set run.eval_interval=20 --set run.save_interval=20 --run-dir "$W/runs/torchrun"
# compiled cases last: their warm-up is the longest and least predictable
step gpu_check_compile 120 $PY benchmarks/gpu_check.py --preset "$PAPER" --corpus "$CORPUS" \
  --steps 30 --warmup 10 --compile-only --precisions bf16 --json "$W/gpu_check_compile.json"
step throughput_compile 120 $PY benchmarks/train_throughput.py --device "$DEVICE" \
  --corpus "$CORPUS" --cases "$PAPER/pairs/bf16/compile" "$EFFICIENT/packed/bf16/compile" \
  --batch-size 32 --grad-accum 4 --repeats 8 --warmup 3 --json "$W/throughput_compile.json"
echo "total $(($(date +%s) - START)) s" | tee -a "$LOG"
pack
