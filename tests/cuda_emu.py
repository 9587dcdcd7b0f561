"""CUDA C on the CPU: a drop-in for ``cupy.RawModule`` that compiles kernels with g++ (test infrastructure).

The CuPy backend's kernels (``minirnn/backends/cupy_kernels.py``) are CUDA C strings that only a
GPU used to run. This module runs them here, so that CI checks them against the NumPy reference::

    mod = RawModule(code=src, options=("-std=c++17",))
    mod.get_function("rate_forward_loop")(grid, block, args, shared_mem=0)

How. The source is compiled as C++20 after a prelude that defines the CUDA keywords, the index
variables (``threadIdx``, ``blockIdx``, ``blockDim``, ``gridDim``), libm's math with CUDA's float
overloads, ``atomicAdd`` and ``__syncthreads``. ``__shared__`` arrays become function statics,
shared by a block's threads, and ``extern __shared__ T smem[]`` becomes a pointer to ``shared_mem``
bytes per block. Each ``extern "C" __global__ void NAME(...)`` gets a launcher; a small runtime
library (compiled once per process) runs the blocks one after another and, inside a block, the
threads: one after another when the source never calls ``__syncthreads``, else by
:data:`SCHEDULE`: as fibers (``ucontext``) on the calling thread, each round running every thread
in turn up to its next barrier (the default: deterministic, fast, and a missing barrier shows on
every run, since thread 0 then writes before thread 1 reads), the same last thread first, or as
real threads (``std::thread``) meeting at a ``std::barrier`` (any interleaving).

Checks a GPU would not make, to catch host-side mistakes early: each array argument must be
C-contiguous with the dtype of its pointer parameter (``real`` resolved from the source's
``typedef``); a scalar must have the parameter's size and kind (CuPy passes a Python ``int`` as a
64-bit ``long long`` and a ``float`` as ``double``, so an ``int`` parameter needs ``np.int32``);
an array written through a non-const pointer must be writeable; the launch must fit CUDA's limits
(1024 threads a block, 48 KiB of dynamic shared memory without opt-in). Dynamic shared memory
starts as 0xFF bytes (NaN for floats) in every block, and a write past its end is reported.
Overlapping ``__restrict__`` arguments are not refused: minirnn passes one array for several
parameters that a variant never reads, which is valid.

Not modelled: warps (``__shfl*``, ``__ballot*``, ``__syncwarp``: refused with an error), the
memory model beyond the barrier, out-of-bounds global accesses (a wild write may crash the test
process; pytest's faulthandler then names the launch), streams and asynchrony (a launch returns
when done), nvcc's contraction of ``a * b + c`` into FMA (g++ rounds twice, as NumPy does,
so the emulator agrees with the reference more closely than a GPU may), and the last bit of
CUDA's ``exp``/``log1p``/``tanh`` (glibc's are used). :func:`nvcc_ptx_check` covers the compiler
side: NVRTC, which CuPy uses, has nvcc's front end.

g++ (or ``$CXX``) and nvcc are looked up on ``PATH``; without them the tests that need them skip.
Compiled libraries are cached by a hash of their source, in ``$MINIRNN_CUDA_EMU_CACHE`` when set,
else in a temporary folder removed at exit: one compiler run per distinct source per process.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import functools
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading

import numpy as np
import pytest

CXX_FLAGS = ("-O1", "-std=c++20", "-shared", "-fPIC", "-pthread")
NVCC_FLAGS = ("-ptx", "-std=c++17", "-arch=sm_90", "-allow-unsupported-compiler")  # the host compiler only preprocesses
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK = (1024, 1024, 64)
MAX_GRID = (2 ** 31 - 1, 65535, 65535)
MAX_DYNAMIC_SHARED = 48 * 1024  # bytes a block may use without cudaFuncSetAttribute
# How a block's threads run when the kernel calls __syncthreads (see _RUNTIME): "fibers" (the default:
# deterministic, each thread in turn up to its next barrier), "fibers-reversed" (the same, last thread
# first) or "threads" (std::threads at a std::barrier: real concurrency). Kernels without barriers run
# their threads one after another. Set it with the MINIRNN_CUDA_EMU_SCHEDULE variable or schedule().
SCHEDULES = {"fibers": 1, "fibers-reversed": 2, "threads": 3}
SCHEDULE = os.environ.get("MINIRNN_CUDA_EMU_SCHEDULE", "fibers")


class CompileError(RuntimeError):
    """The compiler rejected a source; the message holds its output."""


class LaunchError(RuntimeError):
    """A launch CUDA would refuse, or an argument that does not fit its parameter."""


# ---- the C++ that stands in for the CUDA runtime ------------------------------------------------
_RUNTIME = r"""
// The emulator's runtime: runs a kernel's blocks one after another, and a block's threads
//  - one after another (mode 0: the kernel never calls __syncthreads);
//  - as fibers on this thread (mode 1, or 2 for the reverse order): each round runs every live thread up
//    to its next __syncthreads (or its end), in thread order, so a missing barrier shows deterministically;
//  - as std::threads meeting at a std::barrier (mode 3): real concurrency, any interleaving.
#include <barrier>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>
#include <ucontext.h>

struct uint3 { unsigned int x, y, z; };
typedef void (*minirnn_emu_thunk)(void** args);
static const size_t GUARD = 256;          // bytes after the dynamic shared memory, checked after each block
static const size_t FIBER_STACK = 256 * 1024;
static std::mutex launch_mutex, error_mutex;  // one launch at a time, as on one stream
static std::string first_error;
static unsigned char* block_smem = nullptr;
static uint3 block_idx;
static thread_local uint3 thread_idx;      // sequential and threads modes
static std::barrier<>* block_barrier = nullptr;  // threads mode

struct Fiber { ucontext_t ctx; uint3 idx; bool done; };
static Fiber* current_fiber = nullptr;     // fibers mode: the thread now running
static ucontext_t scheduler;
static minirnn_emu_thunk fiber_thunk;
static void** fiber_args;

extern "C" const uint3* minirnn_emu_thread_index(void) { return current_fiber ? &current_fiber->idx : &thread_idx; }
extern "C" const uint3* minirnn_emu_block_index(void) { return &block_idx; }
extern "C" void* minirnn_emu_smem(void) { return block_smem; }

extern "C" void minirnn_emu_syncthreads(void) {
    if (current_fiber) swapcontext(&current_fiber->ctx, &scheduler);  // back to the scheduler until the next round
    else if (block_barrier) block_barrier->arrive_and_wait();
}

static void record(const std::string& what) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (first_error.empty()) first_error = what;
}

static void run_thread(minirnn_emu_thunk thunk, void** args) {
    try { thunk(args); } catch (const std::exception& e) { record(e.what()); }
}

static void fiber_entry() {
    run_thread(fiber_thunk, fiber_args);
    current_fiber->done = true;  // returning resumes the scheduler (uc_link)
}

static void run_block_fibers(minirnn_emu_thunk thunk, void** args, const unsigned* block, bool reverse,
                             std::vector<Fiber>& fibers, std::vector<std::unique_ptr<char[]>>& stacks) {
    const size_t n = fibers.size();
    fiber_thunk = thunk;
    fiber_args = args;
    size_t t = 0;
    for (unsigned z = 0; z < block[2]; ++z)
        for (unsigned y = 0; y < block[1]; ++y)
            for (unsigned x = 0; x < block[0]; ++x, ++t) {
                Fiber& f = fibers[t];
                f.idx = uint3{x, y, z};
                f.done = false;
                getcontext(&f.ctx);
                f.ctx.uc_stack.ss_sp = stacks[t].get();
                f.ctx.uc_stack.ss_size = FIBER_STACK;
                f.ctx.uc_link = &scheduler;
                makecontext(&f.ctx, fiber_entry, 0);
            }
    for (size_t live = n; live > 0;) {  // one round: every live thread up to its next barrier
        for (size_t k = 0; k < n; ++k) {
            Fiber& f = fibers[reverse ? n - 1 - k : k];
            if (f.done) continue;
            current_fiber = &f;
            swapcontext(&scheduler, &f.ctx);
            current_fiber = nullptr;
            live -= f.done;
        }
    }
}

static void run_block_threads(minirnn_emu_thunk thunk, void** args, const unsigned* block) {
    const size_t nthreads = (size_t)block[0] * block[1] * block[2];
    std::barrier<> bar((std::ptrdiff_t)nthreads);
    block_barrier = &bar;
    std::vector<std::thread> pool;
    pool.reserve(nthreads);
    size_t started = 0;
    try {
        for (unsigned z = 0; z < block[2]; ++z)
            for (unsigned y = 0; y < block[1]; ++y)
                for (unsigned x = 0; x < block[0]; ++x, ++started)
                    pool.emplace_back([=, &bar] {
                        thread_idx = uint3{x, y, z};
                        run_thread(thunk, args);
                        bar.arrive_and_drop();  // a finished thread no longer holds the others at the barrier
                    });
    } catch (const std::exception& e) {  // could not start every thread: let the started ones finish
        record(std::string("could not start the block's threads: ") + e.what());
        for (size_t t = started; t < nthreads; ++t) bar.arrive_and_drop();
    }
    for (auto& t : pool) t.join();
    block_barrier = nullptr;
}

extern "C" int minirnn_emu_run(minirnn_emu_thunk thunk, void** args, const unsigned* grid, const unsigned* block,
                               size_t smem_bytes, int mode, char* err, size_t errlen) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    first_error.clear();
    std::unique_ptr<unsigned char[]> smem(new unsigned char[smem_bytes + GUARD + 256]);
    block_smem = smem.get() + (256 - (reinterpret_cast<size_t>(smem.get()) % 256)) % 256;  // aligned as CUDA's
    const size_t nthreads = (size_t)block[0] * block[1] * block[2];
    std::vector<Fiber> fibers(mode == 1 || mode == 2 ? nthreads : 0);
    std::vector<std::unique_ptr<char[]>> stacks;
    for (size_t t = 0; t < fibers.size(); ++t) stacks.emplace_back(new char[FIBER_STACK]);
    for (unsigned bz = 0; bz < grid[2] && first_error.empty(); ++bz)
        for (unsigned by = 0; by < grid[1] && first_error.empty(); ++by)
            for (unsigned bx = 0; bx < grid[0] && first_error.empty(); ++bx) {
                block_idx = uint3{bx, by, bz};
                std::memset(block_smem, 0xFF, smem_bytes + GUARD);  // uninitialised shared memory reads as NaN
                if (mode == 1 || mode == 2) {
                    run_block_fibers(thunk, args, block, mode == 2, fibers, stacks);
                } else if (mode == 3) {
                    run_block_threads(thunk, args, block);
                } else {
                    for (unsigned z = 0; z < block[2]; ++z)
                        for (unsigned y = 0; y < block[1]; ++y)
                            for (unsigned x = 0; x < block[0]; ++x) {
                                thread_idx = uint3{x, y, z};
                                run_thread(thunk, args);
                            }
                }
                for (size_t i = smem_bytes; i < smem_bytes + GUARD; ++i)
                    if (block_smem[i] != 0xFF) {
                        char msg[200];
                        std::snprintf(msg, sizeof msg, "block (%u, %u, %u) wrote past its %zu bytes of dynamic "
                                      "shared memory (byte %zu)", bx, by, bz, smem_bytes, i);
                        record(msg);
                        break;
                    }
            }
    block_smem = nullptr;
    if (first_error.empty()) return 0;
    std::snprintf(err, errlen, "%s", first_error.c_str());
    return 1;
}
"""

_UNARY_MATH = ("tanh exp expm1 exp2 log log1p log2 log10 fabs sqrt cbrt sin cos tan sinh cosh asin acos atan "
               "floor ceil trunc round erf erfc").split()
_BINARY_MATH = "copysign pow fmin fmax fmod atan2 hypot".split()


def _math_declarations() -> str:
    """libm's double and float functions, and CUDA's float overloads of the C names (``tanh(float)``).

    Declared here rather than through <cmath>, which would double the compile time of every module.
    """
    lines = ['extern "C" {']
    lines += [f"double {f}(double) noexcept; float {f}f(float) noexcept;" for f in _UNARY_MATH]
    lines += [f"double {f}(double, double) noexcept; float {f}f(float, float) noexcept;" for f in _BINARY_MATH]
    lines += ["double fma(double, double, double) noexcept; float fmaf(float, float, float) noexcept;", "}"]
    lines += [f"static inline float {f}(float x) {{ return {f}f(x); }}" for f in _UNARY_MATH]
    lines += [f"static inline float {f}(float x, float y) {{ return {f}f(x, y); }}" for f in _BINARY_MATH]
    lines += ["static inline float fma(float x, float y, float z) { return fmaf(x, y, z); }"]
    return "\n".join(lines) + "\n"


_PRELUDE = r"""
// CUDA C on the host (tests/cuda_emu.py): keywords, index variables, math, atomics, barriers.
#include <cstddef>
#include <cstdint>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) alignas(n)
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__ static
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef void (*minirnn_emu_thunk)(void** args);
extern "C" const uint3* minirnn_emu_thread_index(void);  // the running thread's (or fiber's) index
extern "C" const uint3* minirnn_emu_block_index(void);
extern "C" void minirnn_emu_syncthreads(void);
extern "C" void* minirnn_emu_smem(void);
extern "C" int minirnn_emu_run(minirnn_emu_thunk, void**, const unsigned*, const unsigned*, size_t, int, char*, size_t);
#define threadIdx (*minirnn_emu_thread_index())
#define blockIdx (*minirnn_emu_block_index())
static dim3 blockDim, gridDim;
static const int warpSize = 32;
#define __syncthreads() minirnn_emu_syncthreads()
""" + _math_declarations() + r"""
template <typename T> static inline bool isnan(T x) { return __builtin_isnan(x); }
template <typename T> static inline bool isinf(T x) { return __builtin_isinf(x); }
template <typename T> static inline bool isfinite(T x) { return __builtin_isfinite(x); }
template <typename T> static inline T min(T a, T b) { return b < a ? b : a; }
template <typename T> static inline T max(T a, T b) { return a < b ? b : a; }
static inline double __dmul_rn(double a, double b) { return a * b; }  // CUDA's unfused, round-to-nearest ops
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
#define SEQ __ATOMIC_SEQ_CST
template <typename T> static inline T minirnn_emu_add_int(T* p, T v) { return __atomic_fetch_add(p, v, SEQ); }
template <typename T> static inline T minirnn_emu_add_float(T* p, T v) {  // compare-and-swap on the bits
    T old, want;
    __atomic_load(p, &old, SEQ);
    do { want = old + v; } while (!__atomic_compare_exchange(p, &old, &want, false, SEQ, SEQ));
    return old;
}
#undef SEQ
static inline int atomicAdd(int* p, int v) { return minirnn_emu_add_int(p, v); }
static inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return minirnn_emu_add_int(p, v); }
typedef unsigned long long minirnn_emu_ull;
static inline minirnn_emu_ull atomicAdd(minirnn_emu_ull* p, minirnn_emu_ull v) { return minirnn_emu_add_int(p, v); }
static inline float atomicAdd(float* p, float v) { return minirnn_emu_add_float(p, v); }
static inline double atomicAdd(double* p, double v) { return minirnn_emu_add_float(p, v); }
#line 1 "kernel.cu"
"""

# ---- parsing the kernel source ------------------------------------------------------------------
_WARP = re.compile(r"\b(__shfl\w*|__ballot\w*|__any_sync|__all_sync|__activemask|__syncwarp|__match\w*_sync"
                   r"|__reduce\w*_sync)\b")
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(\w+)\s*\(([^)]*)\)')
_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+([^;\[]*?)(\w+)\s*\[\s*\]\s*;")
_TYPEDEF = re.compile(r"\btypedef\s+([\w\s]+?)\s+(\w+)\s*;|\busing\s+(\w+)\s*=\s*([\w\s]+?)\s*;")
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}

# C type -> NumPy dtype, for arguments (LP64, as CUDA on Linux)
_C_TYPES = {
    "float": np.float32, "double": np.float64, "bool": np.bool_,
    "char": np.int8, "signed char": np.int8, "unsigned char": np.uint8, "int8_t": np.int8, "uint8_t": np.uint8,
    "short": np.int16, "unsigned short": np.uint16, "int16_t": np.int16, "uint16_t": np.uint16,
    "int": np.int32, "signed": np.int32, "signed int": np.int32, "unsigned": np.uint32, "unsigned int": np.uint32,
    "int32_t": np.int32, "uint32_t": np.uint32,
    "long": np.int64, "long int": np.int64, "unsigned long": np.uint64, "long long": np.int64,
    "long long int": np.int64, "unsigned long long": np.uint64, "unsigned long long int": np.uint64,
    "int64_t": np.int64, "uint64_t": np.uint64, "size_t": np.uint64, "ptrdiff_t": np.int64,
}


def _strip_comments(code: str) -> str:
    """``code`` with // and /* */ comments blanked (string literals in kernels are rare enough to ignore)."""
    code = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group()), code, flags=re.S)
    return re.sub(r"//[^\n]*", "", code)


class Param:
    """One kernel parameter: its name, the C++ type to read it as, its dtype, and its qualifiers."""

    def __init__(self, decl: str, typedefs: dict):
        decl = " ".join(decl.split())
        m = re.fullmatch(r"(.*?)(\w+)", decl)
        if not m or not m.group(1).strip():
            raise NotImplementedError(f"cuda_emu cannot parse the kernel parameter {decl!r}")
        type_text, self.name = m.group(1), m.group(2)
        self.pointer = type_text.count("*")
        if self.pointer > 1 or "&" in type_text or "[" in type_text:
            raise NotImplementedError(f"cuda_emu supports scalars and single pointers, not {decl!r}")
        words = type_text.replace("*", " * ").split()
        base_words = words[:words.index("*")] if self.pointer else words
        self.const = "const" in base_words  # const data (pointee for a pointer)
        self.ctype = " ".join(w for w in base_words if w not in _QUALIFIERS)  # as written, e.g. "real"
        resolved = self.ctype
        for _ in range(10):  # follow typedef chains
            resolved = typedefs.get(resolved, resolved)
        dtype = _C_TYPES.get(resolved)
        self.dtype = None if dtype is None else np.dtype(dtype)
        if not self.pointer and self.dtype is None:
            raise NotImplementedError(f"cuda_emu cannot pass a scalar of type {self.ctype!r} ({decl!r})")

    def cast(self) -> str:
        """How the launcher reads the argument from its ``void*`` slot."""
        return f"*({self.ctype}**)" if self.pointer else f"*({self.ctype}*)"


def _typedefs(code: str) -> dict:
    out = {}
    for m in _TYPEDEF.finditer(code):
        old, new = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        out[new] = " ".join(old.split())
    return out


def parse_kernels(code: str) -> dict:
    """``{name: [Param, ...]}`` of every ``extern "C" __global__ void`` kernel in ``code``."""
    bare = _strip_comments(code)
    if m := _WARP.search(bare):
        raise NotImplementedError(f"cuda_emu does not model warps: the source uses {m.group(1)}")
    typedefs = _typedefs(bare)
    kernels = {}
    for m in _KERNEL.finditer(bare):
        decls = [d for d in m.group(2).split(",") if d.strip()]
        kernels[m.group(1)] = [Param(d, typedefs) for d in decls]
    if len(kernels) != len(re.findall(r"\b__global__\b", bare)):
        raise NotImplementedError('cuda_emu runs only kernels declared as extern "C" __global__ void NAME(...)')
    return kernels


def translate(code: str) -> tuple[str, dict]:
    """The C++ translation unit for ``code`` (prelude, source, launchers) and its parsed kernels."""
    kernels = parse_kernels(code)

    def dynamic_shared(m):  # extern __shared__ T name[];  ->  T* const name = <the block's buffer>;
        ctype = re.sub(r"__align__\s*\(\s*\d+\s*\)", "", m.group(1)).strip()
        return f"{ctype}* const {m.group(2)} = reinterpret_cast<{ctype}*>(minirnn_emu_smem());"

    body = _EXTERN_SHARED.sub(dynamic_shared, code)
    launchers = []
    for name, params in kernels.items():
        call = ", ".join(f"{p.cast()}a[{i}]" for i, p in enumerate(params))
        launchers.append(
            f"static void minirnn_emu_thunk_{name}(void** a) {{ {name}({call}); }}\n"
            f'extern "C" int minirnn_emu_launch_{name}(const unsigned* g, const unsigned* b, size_t smem, void** a,\n'
            f"                                         int mode, char* err, size_t errlen) {{\n"
            f"    gridDim = dim3(g[0], g[1], g[2]); blockDim = dim3(b[0], b[1], b[2]);\n"
            f"    return minirnn_emu_run(&minirnn_emu_thunk_{name}, a, g, b, smem, mode, err, errlen);\n}}\n")
    return _PRELUDE + body + '\n#line 1 "launchers"\n' + "".join(launchers), kernels


# ---- compiling and caching ----------------------------------------------------------------------
_lock = threading.Lock()
_libraries: dict = {}  # digest -> ctypes.CDLL


def have_gxx() -> bool:
    """Whether a C++ compiler is there (``$CXX`` or g++ on PATH)."""
    return shutil.which(os.environ.get("CXX", "g++")) is not None


def gxx() -> str:
    """The C++ compiler's path; skips the calling test when there is none."""
    path = shutil.which(os.environ.get("CXX", "g++"))
    if path is None:
        pytest.skip("the CUDA emulator needs a C++20 compiler (g++ 12 or newer on PATH, or $CXX)")
    return path


@functools.lru_cache(maxsize=None)
def _cache_dir() -> pathlib.Path:
    if os.environ.get("MINIRNN_CUDA_EMU_CACHE"):
        path = pathlib.Path(os.environ["MINIRNN_CUDA_EMU_CACHE"])
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = pathlib.Path(tempfile.mkdtemp(prefix="minirnn_cuda_emu_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _compile(cpp: str, prefix: str, extra=()) -> pathlib.Path:
    """Compile ``cpp`` into a shared library in the cache folder (reused when already there)."""
    compiler = gxx()
    flags = (*CXX_FLAGS, *extra)
    digest = hashlib.sha256("\0".join((compiler, *flags, cpp)).encode()).hexdigest()[:24]
    target = _cache_dir() / f"{prefix}_{digest}.so"
    if target.exists():
        return target
    src = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.cpp")
    src.write_text(cpp)
    tmp = src.with_suffix(".so")
    result = subprocess.run([compiler, *CXX_FLAGS, str(src), "-o", str(tmp), *extra], capture_output=True, text=True)
    if result.returncode != 0:
        raise CompileError(f"g++ could not compile the emulated kernel source ({src}):\n{result.stderr}")
    os.replace(tmp, target)  # atomic: a parallel compile of the same source just wins or loses the race
    return target


@functools.lru_cache(maxsize=None)
def _runtime() -> pathlib.Path:
    return _compile(_RUNTIME, "minirnn_emu_runtime")


def _library(cpp: str):
    digest = hashlib.sha256(cpp.encode()).hexdigest()
    with _lock:
        lib = _libraries.get(digest)
    if lib is None:
        runtime = _runtime()
        path = _compile(cpp, "kernels", (str(runtime), f"-Wl,-rpath,{runtime.parent}"))
        lib = ctypes.CDLL(str(path))
        with _lock:
            lib = _libraries.setdefault(digest, lib)
    return lib


def compile_all(codes, workers=None) -> None:
    """Compile several kernel sources ahead, one g++ per core; later ``RawModule``\\ s reuse them.

    A prefetch: a source that does not compile is left for the ``RawModule`` that needs it to report.
    """
    cpps = set()
    for code in codes:
        try:
            cpps.add(translate(code)[0])
        except NotImplementedError:
            pass
    _runtime()
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for future in [pool.submit(_library, cpp) for cpp in cpps]:
            future.exception()  # wait; errors are raised again where the source is used


# ---- the CuPy-like front: RawModule, Function ---------------------------------------------------
class RawModule:
    """``cupy.RawModule(code=..., options=...)`` compiled for the CPU (``options`` are CUDA's and ignored)."""

    def __init__(self, code: str, options=(), backend="nvrtc", name_expressions=None, **kwargs):
        if name_expressions:
            raise NotImplementedError("cuda_emu does not support name_expressions (templated kernels)")
        self.code, self.options = code, tuple(options)
        cpp, self.kernels = translate(code)
        self._lib = _library(cpp)
        self.barriers = "__syncthreads" in _strip_comments(code)

    def get_function(self, name: str) -> "Function":
        if name not in self.kernels:
            raise LaunchError(f"No kernel named {name!r} in this module; it has {sorted(self.kernels)}.")
        return Function(name, self.kernels[name], getattr(self._lib, f"minirnn_emu_launch_{name}"), self.barriers)


@contextlib.contextmanager
def schedule(name: str):
    """Run the launches inside the block with ``name`` (one of :data:`SCHEDULES`)."""
    global SCHEDULE
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}: choose one of {sorted(SCHEDULES)}.")
    saved, SCHEDULE = SCHEDULE, name
    try:
        yield
    finally:
        SCHEDULE = saved


def RawKernel(code: str, name: str, options=(), **kwargs) -> "Function":
    """``cupy.RawKernel(code, name, options)``: one kernel of a :class:`RawModule`."""
    return RawModule(code, options, **kwargs).get_function(name)


def _dims(what: str, dims) -> tuple:
    ints = isinstance(dims, tuple) and all(isinstance(d, (int, np.integer)) for d in dims)
    if not ints or not 1 <= len(dims) <= 3:
        raise TypeError(f"{what} must be a tuple of 1 to 3 ints (as CuPy requires). Got {dims!r}.")
    return tuple(max(1, int(d)) for d in dims + (1, 1)[:3 - len(dims)])  # CuPy clamps to >= 1


def _check_launch(name, grid, block, shared_mem):
    if np.prod(block) > MAX_THREADS_PER_BLOCK or any(b > m for b, m in zip(block, MAX_BLOCK)):
        raise LaunchError(f"{name}: block {block} exceeds CUDA's limits "
                          f"({MAX_THREADS_PER_BLOCK} threads, {MAX_BLOCK}).")
    if any(g > m for g, m in zip(grid, MAX_GRID)):
        raise LaunchError(f"{name}: grid {grid} exceeds CUDA's limits {MAX_GRID}.")
    if not 0 <= shared_mem <= MAX_DYNAMIC_SHARED:
        raise LaunchError(f"{name}: shared_mem={shared_mem} bytes; a block gets 0 to {MAX_DYNAMIC_SHARED} bytes "
                          "of dynamic shared memory without cudaFuncSetAttribute.")


def _array_view(value):
    """``(data pointer, dtype, C-contiguous, writeable)`` of a NumPy array or a
    ``__cuda_array_interface__`` object; None when ``value`` is neither."""
    if isinstance(value, np.ndarray):
        return value.ctypes.data, value.dtype, value.flags.c_contiguous, value.flags.writeable
    cai = getattr(value, "__cuda_array_interface__", None)
    if cai is None:
        return None
    dtype, shape = np.dtype(cai["typestr"]), tuple(cai["shape"])
    strides = cai.get("strides")
    contiguous = strides is None or strides == tuple(np.empty(shape, dtype).strides) or 0 in shape
    ptr, readonly = cai["data"]
    return ptr, dtype, contiguous, not readonly


class Function:
    """One kernel: ``fn(grid, block, args, shared_mem=0)`` runs it on the CPU and returns when it is done."""

    def __init__(self, name, params, launcher, barriers):
        self.name, self.params, self._launch, self.barriers = name, params, launcher, barriers
        launcher.restype = ctypes.c_int
        launcher.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t,
                             ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]

    def __repr__(self):
        return f"cuda_emu.Function({self.name!r})"

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        grid, block = _dims("grid", grid), _dims("block", block)
        _check_launch(self.name, grid, block, int(shared_mem))
        args = tuple(args)
        if len(args) != len(self.params):
            raise LaunchError(f"{self.name} takes {len(self.params)} arguments "
                              f"({', '.join(p.name for p in self.params)}); got {len(args)}.")
        keep, slots = [], (ctypes.c_void_p * max(1, len(args)))()
        for i, (p, value) in enumerate(zip(self.params, args)):
            holder = self._pointer(p, value) if p.pointer else self._scalar(p, value)
            keep.append(holder)
            slots[i] = ctypes.addressof(holder) if isinstance(holder, ctypes.c_void_p) else holder.ctypes.data
        if SCHEDULE not in SCHEDULES:
            raise ValueError(f"Unknown schedule {SCHEDULE!r} (MINIRNN_CUDA_EMU_SCHEDULE): choose one of "
                             f"{sorted(SCHEDULES)}.")
        mode = SCHEDULES[SCHEDULE] if self.barriers else 0
        err = ctypes.create_string_buffer(1024)
        rc = self._launch((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), int(shared_mem), slots, mode,
                          err, 1024)
        if rc:
            raise LaunchError(f"{self.name}: {err.value.decode(errors='replace')}")

    def _pointer(self, p, value):
        """A ``c_void_p`` holding the array's data pointer, after checking dtype, layout and writeability."""
        if value is None:
            return ctypes.c_void_p(0)
        view = _array_view(value)
        if view is None:
            raise LaunchError(f"{self.name}: argument {p.name!r} ({p.ctype}*) needs an array; "
                              f"got {type(value).__name__}.")
        ptr, dtype, contiguous, writeable = view
        if p.dtype is not None and dtype != p.dtype:
            raise LaunchError(f"{self.name}: argument {p.name!r} is {'const ' * p.const}{p.ctype}* ({p.dtype}) but "
                              f"the array is {dtype}.")
        if not contiguous:
            raise LaunchError(f"{self.name}: argument {p.name!r} must be C-contiguous (a kernel reads it flat); "
                              "pass ascontiguousarray(a).")
        if not p.const and not writeable:
            raise LaunchError(f"{self.name}: argument {p.name!r} is written by the kernel but the array is read-only.")
        return ctypes.c_void_p(ptr)

    def _scalar(self, p, value):
        """A 0-d array holding ``value``'s bytes as CuPy would pass them, after checking size and kind."""
        if isinstance(value, (bool, np.bool_)):
            given = np.asarray(value, np.bool_)
        elif isinstance(value, int):
            given = np.asarray(value, np.int64)  # CuPy: a Python int is a long long
        elif isinstance(value, float):
            given = np.asarray(value, np.float64)  # ... and a float a double
        elif isinstance(value, np.generic):
            given = np.asarray(value)
        else:
            raise LaunchError(f"{self.name}: argument {p.name!r} ({p.ctype}) needs a scalar; "
                              f"got {type(value).__name__}.")
        groups = {"b": "b", "i": "iu", "u": "iu", "f": "f"}
        if given.dtype.itemsize != p.dtype.itemsize or given.dtype.kind not in groups.get(p.dtype.kind, ""):
            raise LaunchError(
                f"{self.name}: argument {p.name!r} is {p.ctype} ({p.dtype}, {p.dtype.itemsize} bytes) but got "
                f"{value!r} ({given.dtype}); CuPy passes the bytes as they are: use np.{p.dtype.name}(...).")
        return np.array(given).view(p.dtype)


# ---- nvcc: the GPU compiler's front end ---------------------------------------------------------
def _nvcc_path():
    return shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)


def have_nvcc() -> bool:
    """Whether nvcc is there (on PATH or in /usr/local/cuda/bin)."""
    return _nvcc_path() is not None


def nvcc() -> str:
    """nvcc's path; skips the calling test when there is none."""
    path = _nvcc_path()
    if path is None:
        pytest.skip("nvcc is not installed (the PTX compile check needs it; no GPU is needed)")
    if shutil.which("gcc") is None:
        pytest.skip("nvcc needs a host compiler (gcc on PATH) to preprocess")
    return path


@functools.lru_cache(maxsize=None)
def nvcc_ptx_check(code: str, arch: str = "sm_90") -> str:
    """Compile ``code`` to PTX with nvcc (no device needed) and return the PTX; raise
    :class:`CompileError` with nvcc's messages when it fails.

    NVRTC, which ``cupy.RawModule`` uses, shares nvcc's front end, so this catches the compile
    errors that would otherwise first show on a GPU. (nvcc includes ``cuda_runtime.h`` and finds
    system headers where NVRTC may not; the kernels here include nothing.)
    """
    compiler = nvcc()
    with tempfile.TemporaryDirectory(prefix="minirnn_ptx_") as tmp:
        src, ptx = pathlib.Path(tmp, "kernel.cu"), pathlib.Path(tmp, "kernel.ptx")
        src.write_text(code)
        flags = [f if not f.startswith("-arch") else f"-arch={arch}" for f in NVCC_FLAGS]
        result = subprocess.run([compiler, *flags, "-o", str(ptx), str(src)], capture_output=True, text=True)
        if result.returncode != 0:
            raise CompileError(f"nvcc rejected the kernel source:\n{result.stderr}{result.stdout}")
        return ptx.read_text()


def ptx_check_all(codes, workers=None) -> None:
    """:func:`nvcc_ptx_check` ahead for several sources, one nvcc per core (a prefetch, as :func:`compile_all`)."""
    nvcc()
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for future in [pool.submit(nvcc_ptx_check, code) for code in set(codes)]:
            future.exception()
