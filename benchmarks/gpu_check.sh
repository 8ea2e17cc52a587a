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
