"""One contender in its own process: ``python worker.py MODULE CONTENDER THREADS``.

The thread counts are fixed in the environment *before* any numerical library is imported, then
``MODULE.make(contender, config, data_path)`` builds the contender and
:func:`common.serve` answers the driver (``bench_peers.py``) on stdin/stdout.
"""
import importlib
import os
import sys

if __name__ == "__main__":
    module_name, contender, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import common  # noqa: E402

    module = importlib.import_module(module_name)
    if hasattr(module, "preimport"):
        module.preimport(contender, threads)  # import the framework now: "after import" memory
    common.serve(module.make, contender)
