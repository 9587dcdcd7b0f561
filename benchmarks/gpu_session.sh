#!/bin/bash
# One device session's checks, in one command (at most 8.5 minutes; each step has its own time limit; the first run compiles every kernel variant):
#   the GPU tests, the side-by-side benchmark (with the fused update of cupy_update against the unfused one, its
#   "step" loops as CUDA graphs against launch by launch, and noise made in the loop against noise drawn before
#   it), TF32, where one update goes, the minimal example.
#   PYTHONPATH=. bash benchmarks/gpu_session.sh          (results also under $OUT when it is set)
# Run it on an H200 (device kind nvidia-h200) where one can be had: the third session's figures are from one, and at
# N_rec 1024 x batch 4096 the contenders together need more than an H100's 80 GB.
export PYTHONPATH=${PYTHONPATH:-.}
O=${OUT:-/tmp/minirnn_gpu}; mkdir -p "$O"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"; } > "$O/facts.txt" 2>&1
timeout 185 python3 -m pytest -m gpu -q tests/test_gpu.py --tb=short -rs --durations=15 -p no:cacheprovider > "$O/tests.txt" 2>&1
echo "pytest exit status $?" >> "$O/tests.txt"
timeout 190 python3 benchmarks/bench_gpu.py --rounds 3 --sample-s 0.1 --contenders \
    "minirnn,minirnn nograph,minirnn unfused,minirnn predrawn,minirnn loop,torch eager,JAX f32,JAX default" > "$O/bench.md" 2>&1
CUPY_TF32=1 timeout 30 python3 benchmarks/bench_gpu.py --rounds 3 --sample-s 0.1 --contenders "minirnn,JAX default" \
    --configs 1024x1024,2048x1024 > "$O/bench_tf32.md" 2>&1
timeout 60 python3 benchmarks/profile_gpu.py --reps 5 --configs 50x128,256x1024,1024x1024 --strategies loop,step > "$O/profile.md" 2>&1
timeout 45 python3 benchmarks/bench_minimal_example.py --backends cupy --repeats 2 --markdown > "$O/minimal.md" 2>&1
cat "$O/facts.txt"; grep -E "^(FAILED|ERROR)|passed|failed|exit status|^[0-9.]+s (call|setup)" "$O/tests.txt"
cat "$O/bench.md" "$O/bench_tf32.md" "$O/profile.md"; tail -4 "$O/minimal.md"
