#!/usr/bin/env bash
# GPU protocol of the supernet ranking benchmark, for a lent accelerator (prepared; see docs/supernets.md).
# Closer to PA&DA's NB201 protocol than the CPU one: C=16, N=5, the full 50k CIFAR-10 train set, batch 256,
# data kept on the GPU; every one of the 15,625 cells is ranked (charged once per functional class) on the
# first 100 test images of each class (1,000), and tau is over all cells (tau_cells) and over classes (tau).
# The paper trains 250 epochs; EPOCHS (default 30) is what fits a short device lease: state it with the result.
#
# Usage: DATA=/path/cifar10_uint8.npz [EPOCHS=30] [SEEDS=0] [SAMPLERS=spos,pada] bash benchmarks/gpu_supernet.sh [OUTDIR]
# Rough cost on one H100/H200-class GPU (estimate, not measured here): ~5 s per epoch for a one-path sampler
# (FairNAS x5), ~1-2 min to rank all cells; SAMPLERS=spos,pada with EPOCHS=30 and one seed fits ~8 minutes.
set -eu
out=${1:-${OUT:-/tmp/gpu_supernet}}
mkdir -p "$out"
: "${DATA:?set DATA to CIFAR-10 as a uint8 npz (x_train y_train x_test y_test); the device has no network}"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_supernet_train.py tests/test_supernet_rank.py -k cuda 2>&1 \
    | tee "$out/pytest_supernet_cuda.txt" | tail -5
python3 benchmarks/supernet_ranking.py --device cuda --threads 4 --data "$DATA" \
    --channels 16 --cells 5 --epochs "${EPOCHS:-30}" --train-per-class 5000 --batch-size 256 \
    --classes 0 --test-per-class 100 --eval-batch 1000 \
    --seeds "${SEEDS:-0}" --samplers "${SAMPLERS:-spos,pada}" \
    --workdir "$out/work" --output "$out/supernet_ranking_gpu.json" 2>&1 | tee "$out/supernet_ranking_gpu.log"
