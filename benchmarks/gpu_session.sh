#!/bin/bash
# One device session's checks, in one command (at most 9 minutes; each step has its own time limit; the first run compiles every kernel variant):
#   a preflight of the CUDA-graph path (a crash there must not cost the rest), the side-by-side benchmark (the fused
#   update of cupy_update against the unfused one, its "step" loops as CUDA graphs against launch by launch, noise made
#   in the loop against noise drawn before it, each strategy), TF32, the GPU tests, where one update goes, the minimal example.
#   PYTHONPATH=. bash benchmarks/gpu_session.sh          (results also under $OUT when it is set)
# Run it on an H200 (device kind nvidia-h200) where one can be had: the third session's figures are from one, and at
# N_rec 1024 x batch 4096 the contenders together need more than an H100's 80 GB.
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1
O=${OUT:-/tmp/minirnn_gpu}; mkdir -p "$O"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"; } > "$O/facts.txt" 2>&1
PYTEST="python3 -m pytest -m gpu -q --tb=short -rs -p no:cacheprovider"
python3 -c "import xdist" 2>/dev/null && PAR="-n 4"
python3 -c "import pytest_timeout" 2>/dev/null && PER_TEST="--timeout 100"
timeout 45 $PYTEST tests/test_gpu.py -k cuda_graphs $PER_TEST > "$O/preflight.txt" 2>&1
status=$?; echo "preflight exit status $status" >> "$O/preflight.txt"
[ $status -ge 124 ] && NO_GRAPHS=--no-graphs  # a hang or a crash: the benchmark runs without graphs
timeout 240 python3 benchmarks/bench_gpu.py $NO_GRAPHS --rounds 3 --sample-s 0.1 --contenders \
    "minirnn,minirnn nograph,minirnn unfused,minirnn predrawn,minirnn loop,minirnn step,torch eager,JAX f32,JAX default" \
    > "$O/bench.md" 2>&1
CUPY_TF32=1 timeout 35 python3 benchmarks/bench_gpu.py --rounds 3 --sample-s 0.1 --contenders "minirnn,JAX default" \
    --configs 1024x1024,2048x1024 > "$O/bench_tf32.md" 2>&1
timeout 90 $PYTEST $PAR $PER_TEST tests/test_gpu.py --durations=10 > "$O/tests.txt" 2>&1
echo "pytest exit status $?" >> "$O/tests.txt"
timeout 55 python3 benchmarks/profile_gpu.py --reps 5 --configs 50x128,256x1024,1024x1024 --strategies loop,step > "$O/profile.md" 2>&1
timeout 45 python3 benchmarks/bench_minimal_example.py --backends cupy --repeats 2 --markdown > "$O/minimal.md" 2>&1
cat "$O/facts.txt"; tail -3 "$O/preflight.txt"
grep -E "^(FAILED|ERROR)|passed|failed|exit status|^[0-9.]+s (call|setup)" "$O/tests.txt"
cat "$O/bench.md" "$O/bench_tf32.md" "$O/profile.md"; tail -4 "$O/minimal.md"
