"""The products around the fused CuPy update's time loops, each timed as written now and in other shapes.

    PYTHONPATH=. python3 benchmarks/products_gpu.py --configs 1024x4096,2048x1024
    CUPY_TF32=1 PYTHONPATH=. python3 benchmarks/products_gpu.py --configs 2048x1024

Rows are T*B = M long (200 steps), N_in 2, N_out 2. The gradients of the weights reduce over all M rows
to a small output (N x N, N x 3, 2 x N): one cuBLAS call makes few tiles of that output, so most of the
GPU can sit idle; "split S" cuts the rows into S batches of one strided-batched call and sums the S
partial products. The readout and its adjoint (M x 2 and M x N from M x 2) are memory-bound: "kernel" is
one pass of an element-wise or row kernel. Device ms (CUDA events), medians of ``--reps``; ``err`` is
the largest difference from the first row of its group relative to that row's largest magnitude.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

ROWDOT = r"""
extern "C" __global__ void rowdot(const float* R, const float* W, float* Z, long long M, int N) {
    // one warp per row: Z[m, o] = sum_n R[m, n] W[o, n], O outputs (O defined when compiled)
    long long m = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (m >= M) return;
    float acc[O];
    for (int o = 0; o < O; o++) acc[o] = 0;
    for (int n = lane; n < N; n += 32) {
        float r = R[m * N + n];
        for (int o = 0; o < O; o++) acc[o] += r * W[o * N + n];
    }
    for (int o = 0; o < O; o++) {
        float a = acc[o];
        for (int s = 16; s > 0; s /= 2) a += __shfl_down_sync(0xffffffff, a, s);
        if (lane == 0) Z[m * O + o] = a;
    }
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="1024x4096,2048x1024")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    import cupy

    def ms(f):
        for _ in range(2):
            f()
        start, end, times = cupy.cuda.Event(), cupy.cuda.Event(), []
        for _ in range(args.reps):
            start.record()
            f()
            end.record()
            end.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, end))
        return float(np.median(times))

    low_rank = cupy.ElementwiseKernel(  # out[m, n] = sum_j a[m, j] w[j, n]
        "raw T a, raw T w, int32 k, int32 n", "T out",
        "long long m = i / n; int c = i % n; T s = 0; for (int j = 0; j < k; j++) s += a[m * k + j] * w[j * n + c]; out = s;",
        "low_rank")
    print(f"# products_gpu.py, CUPY_TF32={os.environ.get('CUPY_TF32', '0')}")
    print("| N_rec | batch | product | form | device ms | err |")
    print("|---|---|---|---|---|---|")
    for cfg in args.configs.split(","):
        N, B = (int(v) for v in cfg.lower().split("x"))
        T, I, O = args.steps, 2, 2
        M = T * B
        rng = cupy.random.default_rng(0)
        R = rng.standard_normal((M, N), dtype=np.float32)
        D = rng.standard_normal((M, N), dtype=np.float32)
        u = rng.standard_normal((M, I), dtype=np.float32)
        dZ = rng.standard_normal((M, O), dtype=np.float32)
        W_out = rng.standard_normal((O, N), dtype=np.float32)
        W_in = rng.standard_normal((N, I), dtype=np.float32)
        out = cupy.empty((M, N), np.float32)
        u_one = cupy.concatenate([u, cupy.ones((M, 1), np.float32)], axis=1)
        rowdot = cupy.RawKernel(ROWDOT, "rowdot", options=(f"-DO={O}",))

        def split(a, b, S):  # a^T b as the sum over S batches of rows
            return lambda: (a.reshape(S, -1, a.shape[-1]).swapaxes(1, 2) @ b.reshape(S, -1, b.shape[-1])).sum(0)

        def z_kernel():
            Z = cupy.empty((M, O), np.float32)
            rowdot(((M * 32 + 255) // 256,), (256,), (R, W_out, Z, np.int64(M), np.int32(N)))
            return Z

        groups = {
            "dW_rec = D[B:]^T R[:-B]": [("one call", lambda: D[B:].T @ R[:-B]),
                                        ("transposed: (R[:-B]^T D[B:])^T", lambda: (R[:-B].T @ D[B:]).T)]
            + [(f"split {S}", split(D[B:], R[:-B], S)) for S in (2, 4, 8) if ((T - 1) * B) % S == 0],
            "[dW_in | db] = D^T [u | 1]": [("one call", lambda: D.T @ u_one), ("transposed", lambda: (u_one.T @ D).T)]
            + [(f"split {S}", split(D, u_one, S)) for S in (16, 64, 256, 1024) if M % S == 0],
            "dW_out = dZ^T R": [("one call", lambda: dZ.T @ R)]
            + [(f"split {S}", split(dZ, R, S)) for S in (16, 64, 256, 1024) if M % S == 0],
            "Z = R W_out^T": [("one call", lambda: R @ W_out.T), ("kernel (warp per row)", z_kernel),
                              ("column by column", lambda: cupy.stack([R @ W_out[o] for o in range(O)], axis=1))],
            "dL/dR = dZ W_out": [("one call", lambda: cupy.matmul(dZ, W_out, out=out)),
                                 ("kernel", lambda: low_rank(dZ, W_out, O, N, out))],
            "drive = u W_in^T": [("one call", lambda: cupy.matmul(u, W_in.T, out=out)),
                                 ("kernel", lambda: low_rank(u, W_in.T.copy(), I, N, out))],
            "one pass: out = 2 * R": [("elementwise", lambda: cupy.multiply(R, 2, out=out))],
        }
        for product, forms in groups.items():
            first = None
            for form, f in forms:
                try:
                    t = ms(f)
                    value = f().copy()
                    if first is None:
                        first = value
                    err = float(abs(value - first).max() / max(float(abs(first).max()), 1e-30))
                    print(f"| {N} | {B} | {product} | {form} | {t:.3f} | {err:.1e} |", flush=True)
                except Exception as exc:  # noqa: BLE001
                    print(f"| {N} | {B} | {product} | {form} | {type(exc).__name__}: {exc} | |", flush=True)
        groups = R = D = out = u_one = None  # the next size needs the room
        cupy.get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    main()
