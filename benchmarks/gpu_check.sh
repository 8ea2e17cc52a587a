#!/usr/bin/env bash
# The CUDA checks, as run on a lent GPU machine (no Ray there; the package is used from the tree).
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]   (OUTDIR receives the logs)
set -u
out=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$out"
export PYTHONPATH="$PWD:$PWD/.gpu_extra:${PYTHONPATH:-}"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_optim.py tests/test_optimizer_proxy.py \
    -k "cuda or gpu or device" 2>&1 | tee "$out/pytest_cuda.txt" | tail -15

# --- issue 15: population-batched optimizer programs on CUDA (prepared; not yet run on a GPU) ---
# hetero (mixed population) / same (P copies of AdamW) / one-at-a-time rates, task mlp, P = 16384,
# in one run: goals hetero >= 0.9x same and >= 900x one-at-a-time.  ~3-5 min on an H100-class GPU.
python3 benchmarks/batched_programs.py --device cuda --only throughput --P 16384 --serial 16 --repeats 1 \
    --output "$out/batched_programs_gpu.json" 2>&1 | tee "$out/batched_programs_gpu.txt" | tail -8
# the same evaluator through the Ray runner on the real GPU: 2 actors x 0.5 GPU (needs ray importable,
# e.g. carried in .gpu_extra; skipped otherwise)
if python3 -c "import ray" 2>/dev/null; then
python3 - "$out" <<'PY' 2>&1 | tee "$out/ray_gpu.txt" | tail -5
import os, sys, tempfile, automl
with tempfile.TemporaryDirectory() as d:
    s = automl.search(space="optimizer-programs", evaluator="optimizer-proxy", seed=0, out=os.path.join(d, "run"),
                      budget=48, runner="ray", runner_options={"num_actors": 2, "num_gpus_per_actor": 0.5},
                      evaluator_options={"tasks": ["mlp"], "device": "cuda", "batch": 64, "screen": 8},
                      strategy_options={"population_size": 16, "tournament_size": 4})
    print("ray 2 actors x 0.5 GPU:", s["stop_reason"], s["candidates"], "candidates,",
          s["charged_evaluations"], "charged, best", s["best"] and s["best"]["value"])
PY
else
    echo "ray not importable here: Ray-on-GPU check skipped" | tee "$out/ray_gpu.txt"
fi
