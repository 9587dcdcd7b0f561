"""A NumPy-backed stand-in for the parts of CuPy that minirnn uses: ``backend="cupy"`` on the CPU (tests only).

Installed as ``sys.modules["cupy"]`` by :func:`installed`, it lets the CuPy backend run here, in CI:
the array code of the models, optimizers and trainer on "device" arrays, and
``minirnn/backends/cupy_kernels.py`` with its CUDA kernels compiled by ``tests/cuda_emu.py``
(``RawModule``), its cuBLAS calls on raw pointers done by NumPy (``cuda.cublas.sgemm``/``dgemm``),
and its ``ElementwiseKernel``\\ s compiled as C++ loops.

What it models, faithfully enough to catch the host/device mix-ups CuPy would refuse:

- ``ndarray`` (``type(a).__module__ == "cupy"``) wraps a NumPy array. It refuses implicit conversion
  (``np.asarray(a)`` raises CuPy's TypeError; ``a.get()``, ``cupy.asnumpy(a)``, ``float(a)`` work);
  its operators, NumPy ufuncs (``__array_ufunc__``) and NumPy functions (``__array_function__``)
  return ``ndarray``\\ s; reductions and integer indexing return 0-d arrays, as CuPy does.
- Every ``cupy.*`` function except ``array``/``asarray``/``asanyarray`` rejects a NumPy array
  argument with CuPy's ``TypeError: Unsupported type <class 'numpy.ndarray'>`` (so do operators
  with a NumPy operand); ``a[...] = numpy_array`` raises CuPy's ``ValueError``. ``cupy.asarray``
  copies host data (device memory is separate), ``empty``/``empty_like`` are filled with 0xFF bytes
  (NaN) so that reading unwritten memory shows.
- Raw pointers: ``a.data.ptr`` and ``__cuda_array_interface__`` are the host addresses; cuBLAS calls
  check that each matrix lies inside one live device allocation of the routine's dtype and that
  the leading dimensions are valid, then compute ``C = alpha op(A) op(B) + beta C`` with NumPy
  (``C`` is not read when ``beta`` is 0). ``cuda.Device().attributes["MultiProcessorCount"]`` is
  :data:`MULTIPROCESSORS` (small, so that tilings and grid-stride loops vary in small tests).

- Streams capture (``Stream.begin_capture``/``end_capture``, ``Graph.launch``): RawKernel launches and
  cuBLAS calls are recorded by address while a stream captures, as a CUDA graph holds them, and a replay
  checks that each address is still live device memory; any other device work during a capture is refused.
  CuPy's cuBLAS bindings refuse a capturing stream, as CuPy's do; :class:`Libcublas` is the library itself
  as ``ctypes`` shows it (what ``minirnn.backends.cuda_graphs.libcublas()`` returns), which records.

What it does not model: asynchrony (every call completes at once, or at a graph's launch), memory pools and
out-of-memory, multiple devices, TF32 math mode (``setMathMode`` is recorded, products stay
float32), CuPy's own type promotion where it differs from NumPy 2's (e.g. NumPy scalars), the
read-only flag (NumPy's ``broadcast_to`` views are read-only here, writeable in CuPy: a write into
one fails here), ``ReductionKernel``, raw (``raw T x``) ElementwiseKernel parameters, ``cupy.random``,
``cupy.linalg`` and other submodules, and kernel-level details that ``cuda_emu`` does not model.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import operator
import re
import sys
import types
import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

import cuda_emu

MULTIPROCESSORS = 1  # the device's multiprocessor count as the stand-in reports it
IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
            "array explicitly.")  # CuPy's message

# ---- device memory: the live allocations, for checking raw pointers --------------------------------
_allocations: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id(owner) -> owning NumPy array


def _register(a: np.ndarray) -> None:
    owner = a
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.flags.owndata:
        _allocations[id(owner)] = owner


def allocation_of(ptr: int, nbytes: int):
    """The live device allocation holding bytes ``[ptr, ptr + nbytes)``, or None."""
    for owner in list(_allocations.values()):
        start = owner.ctypes.data
        if start <= ptr and ptr + nbytes <= start + owner.nbytes:
            return owner
    return None


# ---- wrapping and unwrapping ---------------------------------------------------------------------
def _wrap(x):
    """NumPy results as device arrays (scalars as 0-d arrays, as CuPy's reductions return)."""
    if isinstance(x, np.ndarray):
        return ndarray._of(x)
    if isinstance(x, np.generic):
        return ndarray._of(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x):
    """Device arrays as their NumPy arrays; a host NumPy array is refused, as CuPy refuses it."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _unwrap_index(key):
    """An index: device arrays unwrapped; host arrays and lists are allowed (CuPy copies them over)."""
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    return key


def _is_advanced(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (ndarray, np.ndarray, list)) for k in keys)


class MemoryPointer:
    """``a.data``: its ``ptr`` is the address of the array's first element."""

    def __init__(self, ptr: int):
        self.ptr = ptr


_METHODS = set("""reshape astype copy sum mean max min argmax argmin prod cumsum cumprod var std any all
    swapaxes transpose ravel flatten squeeze view item tolist clip round dot nonzero take repeat diagonal
    trace conj sort argsort partition put choose compress""".split())
_PROPERTIES = {"shape", "dtype", "ndim", "size", "itemsize", "nbytes", "strides", "flags"}


class ndarray(NDArrayOperatorsMixin):
    """A device array: a NumPy array behind CuPy's interface (see the module docstring)."""

    __module__ = "cupy"
    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the stand-in's ndarray(...) takes no memptr or strides")
        self._a = _uninitialized(shape, dtype, order)
        _register(self._a)

    @classmethod
    def _of(cls, a: np.ndarray) -> "ndarray":
        self = object.__new__(cls)
        self._a = a
        _register(a)
        return self

    # -- what CuPy refuses, and the explicit ways out --
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray) or arr.shape != self.shape:
            raise ValueError("Shape mismatch. Old shape: {}, new shape: {}".format(self.shape, np.shape(arr)))
        self._a[...] = arr

    # -- NumPy's protocols: results stay on the device --
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _not_capturing(f"{ufunc.__name__}")
        kwargs = _unwrap(kwargs)
        if out is not None:  # written in place: device arrays only
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if out is None:
            return _wrap(result)
        return out[0] if len(out) == 1 else out

    def __array_function__(self, func, types, args, kwargs):
        _not_capturing(func.__name__)
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, not a.flags.writeable),
                "strides": None if a.flags.c_contiguous else a.strides, "version": 3}

    # -- attributes --
    @property
    def data(self) -> MemoryPointer:
        return MemoryPointer(self._a.ctypes.data)

    @property
    def T(self):
        return ndarray._of(self._a.T)

    @property
    def device(self):
        return Device(0)

    def __getattr__(self, name):
        if name in _PROPERTIES:
            return getattr(self._a, name)
        if name in _METHODS:
            method = getattr(self._a, name)
            return lambda *args, **kwargs: _wrap(method(*_unwrap(args), **_unwrap(kwargs)))
        raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r} (or the stand-in does not model it)")

    def fill(self, value):
        if isinstance(value, np.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        self._a.fill(_unwrap(value))

    # -- indexing --
    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray) and not _is_advanced(key):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        self._a[_unwrap_index(key)] = value._a if isinstance(value, ndarray) else value

    # -- Python's conversions (CuPy allows these: they synchronize) --
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __complex__(self):
        return complex(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    def __reduce__(self):  # pickled through the host, as CuPy does
        return _restore, (self.get(),)


def _restore(host):
    return ndarray._of(np.array(host))


def _uninitialized(shape, dtype, order="C") -> np.ndarray:
    """New device memory: 0xFF bytes (NaN for floats), so that a read of unwritten memory shows."""
    order = "F" if order == "F" else "C"
    a = np.empty(shape, dtype, order=order)
    a.reshape(-1, order=order).view(np.uint8).fill(0xFF)
    return a


def _host_data(x):
    """Data for np.array: device arrays (also inside lists) by their NumPy arrays."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return [_host_data(v) for v in x]
    return x


# ---- cupy.* functions ----------------------------------------------------------------------------
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, **kwargs):
    """Host (or device) data copied into a new device array."""
    if not copy and isinstance(obj, ndarray) and (dtype is None or np.dtype(dtype) == obj.dtype) and obj.ndim >= ndmin:
        return obj
    return ndarray._of(np.array(_host_data(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, **kwargs):
    """``a`` itself when it is a device array of ``dtype``, else a device copy."""
    if isinstance(a, ndarray) and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    if isinstance(a, ndarray):
        return ndarray._of(a._a.astype(dtype))
    return array(a, dtype=dtype, order=order or "K")


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """A host copy of a device array (or ``np.asarray`` of anything else)."""
    return a.get(order=order, out=out) if isinstance(a, ndarray) else np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in args) else np


def empty(shape, dtype=float, order="C"):
    _not_capturing("an allocation")
    return ndarray._of(_uninitialized(shape, dtype, order))


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def full(shape, fill_value, dtype=None, order="C"):
    """As CuPy: ``empty`` then ``fill`` (a 0-d host array is a scalar; a larger one is refused)."""
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, (ndarray, np.ndarray)) else np.array(fill_value).dtype
    a = empty(shape, dtype, order)
    if isinstance(fill_value, ndarray):
        a._a[...] = fill_value._a
    else:
        a.fill(fill_value)
    return a


def _device_function(f):
    """A NumPy function or ufunc as a cupy one: device arrays in and out, host arrays refused."""
    def call(*args, **kwargs):
        _not_capturing(getattr(f, "__name__", "a cupy function"))
        return _wrap(f(*_unwrap(args), **_unwrap(kwargs)))
    call.__name__ = call.__qualname__ = getattr(f, "__name__", "function")
    return call


_functions: dict = {}


def _module_getattr(name):
    """``cupy.NAME`` for the rest of NumPy's namespace: functions wrapped, types and constants as they are."""
    if name.startswith("__"):
        raise AttributeError(name)
    attr = getattr(np, name)
    if isinstance(attr, types.ModuleType):
        raise AttributeError(f"the CuPy stand-in does not model cupy.{name}")
    if isinstance(attr, np.ufunc) or (callable(attr) and not isinstance(attr, type)):
        if name not in _functions:
            _functions[name] = _device_function(attr)
        return _functions[name]
    return attr


# ---- kernels: RawModule (cuda_emu), ElementwiseKernel ---------------------------------------------
class RawModule:
    """``cupy.RawModule``: the source compiled by ``cuda_emu``; launches take device arrays only."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", name_expressions=None, **kwargs):
        if code is None:
            raise NotImplementedError("the stand-in's RawModule takes code=..., not a path")
        self._module = cuda_emu.RawModule(code=code, options=options, name_expressions=name_expressions)

    def get_function(self, name):
        return _Function(self._module.get_function(name))


def RawKernel(code, name, options=(), **kwargs):
    return RawModule(code=code, options=options).get_function(name)


class _Function:
    def __init__(self, fn):
        self._fn = fn

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        for a in args:
            if isinstance(a, np.ndarray):  # a host array: CuPy cannot pass it to a kernel
                raise TypeError(f"Unsupported type {type(a)}")
        recording = _capturing()
        if recording is None:
            self._fn(grid, block, args, shared_mem=shared_mem)
            return
        held = tuple(_Pointer(a) if isinstance(a, ndarray) else a for a in args)

        def replay():
            for a in held:
                if isinstance(a, _Pointer):
                    _live(a.ptr, a.nbytes, f"passes {self._fn.name} an array")
            self._fn(grid, block, held, shared_mem=shared_mem)
        recording.append(replay)


_PARAM = re.compile(r"^\s*(raw\s+)?(\w+)\s+(\w+)\s*$")


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` with typed or placeholder (``T``) parameters, compiled by ``cuda_emu``
    as one loop over the broadcast elements (inputs read by value, outputs as references)."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, **kwargs):
        self.name, self.operation, self.preamble = name, operation, preamble
        self.no_return, self.return_tuple = no_return, return_tuple
        self.ins, self.outs = self._params(in_params), self._params(out_params)
        self._compiled = {}  # the types of its placeholders -> the kernel

    @staticmethod
    def _params(text):
        params = []
        for decl in filter(str.strip, text.split(",")):
            m = _PARAM.match(decl)
            if m is None or m.group(1):
                raise NotImplementedError(f"the stand-in's ElementwiseKernel cannot take the parameter {decl!r}")
            params.append((m.group(2), m.group(3)))  # (type or placeholder, name)
        return params

    def _types(self, args):
        """``{placeholder: dtype}`` from the array arguments (CuPy's rule: arrays of one placeholder agree)."""
        types_ = {}
        for (ctype, name), a in zip(self.ins + self.outs, args):
            if _dtype_name(ctype) is None and isinstance(a, ndarray):
                if types_.setdefault(ctype, a.dtype) != a.dtype:
                    raise TypeError(f"Type is mismatched. {name} {types_[ctype]} {a.dtype}")
        for (ctype, _), a in zip(self.ins, args):  # placeholders set by scalars only
            if _dtype_name(ctype) is None and ctype not in types_:
                types_[ctype] = np.asarray(a).dtype
        return types_

    def source(self, types_) -> str:
        """The CUDA source this kernel runs as, for the dtypes ``types_``."""
        c = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int32): "int",
             np.dtype(np.int64): "long long", np.dtype(np.uint64): "unsigned long long", np.dtype(np.bool_): "bool"}
        head = "".join(f"typedef {c[np.dtype(t)]} {p};\n" for p, t in types_.items())
        ctype = lambda t: t if t in types_ else c[np.dtype(_dtype_name(t))]  # noqa: E731
        params = [f"const {ctype(t)}* __restrict__ _in_{n}" for t, n in self.ins]
        params += [f"{ctype(t)}* __restrict__ _out_{n}" for t, n in self.outs]
        loads = "".join(f"        const {ctype(t)} {n} = _in_{n}[i];\n" for t, n in self.ins)
        loads += "".join(f"        {ctype(t)}& {n} = _out_{n}[i];\n" for t, n in self.outs)
        return (f"{head}{self.preamble}\n"
                f'extern "C" __global__ void {self.name}({", ".join(params)}, const unsigned long long _n) {{\n'
                f"    for (unsigned long long i = 0; i < _n; ++i) {{\n{loads}        {self.operation}\n    }}\n}}\n")

    def __call__(self, *args, size=None, block_size=None, stream=None):
        _not_capturing(f"ElementwiseKernel {self.name!r}")
        n_in, n_out = len(self.ins), len(self.outs)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        for a in args:
            if isinstance(a, np.ndarray):
                raise TypeError(f"Unsupported type {type(a)}")
        types_ = self._types(args)
        dtype = lambda t: types_[t] if t in types_ else np.dtype(_dtype_name(t))  # noqa: E731
        shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, ndarray)))
        outs = list(args[n_in:]) or [empty(shape, dtype(t)) for t, _ in self.outs]
        for out in outs:
            if not isinstance(out, ndarray) or out.shape != shape:
                raise ValueError(f"Out shape is mismatched: {getattr(out, 'shape', out)} for {shape}")
        # inputs as C-contiguous broadcast copies; outputs copied in (the body may read them) and back
        host_in = [np.ascontiguousarray(np.broadcast_to(np.asarray(_unwrap(a), dtype(t)), shape))
                   for (t, _), a in zip(self.ins, args)]
        host_out = [np.ascontiguousarray(o._a) for o in outs]  # a strided output: a copy, written back below
        key = tuple(sorted((p, np.dtype(t).str) for p, t in types_.items()))
        if key not in self._compiled:
            self._compiled[key] = cuda_emu.RawModule(code=self.source(types_)).get_function(self.name)
        kernel = self._compiled[key]
        kernel((1,), (1,), (*host_in, *host_out, np.uint64(int(np.prod(shape)))))
        for h, o in zip(host_out, outs):
            if h is not o._a:
                o._a[...] = h
        if self.no_return:
            return None
        return outs[0] if n_out == 1 and not self.return_tuple else tuple(outs)


_DTYPE_NAMES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
                "float32", "float64", "complex64", "complex128"}


def _dtype_name(t):
    """The NumPy dtype a parameter type names (``float32``...), or None for a type placeholder (``T``)."""
    return t if t in _DTYPE_NAMES else None


# ---- cupy.cuda: the device, the stream, cuBLAS ---------------------------------------------------
class Device:
    """The one device: its attributes (``MultiProcessorCount`` is :data:`MULTIPROCESSORS`)."""

    def __init__(self, device=0):
        self.id = device

    @property
    def attributes(self):
        return {"MultiProcessorCount": MULTIPROCESSORS, "MaxSharedMemoryPerBlock": 48 * 1024,
                "MaxThreadsPerBlock": 1024}

    @property
    def compute_capability(self):
        return "90"

    def synchronize(self):
        pass

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


_stream_registry: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # ptr -> Stream


class Stream:
    """A stream: ``with stream:`` makes it current; a non-default one can capture launches into a :class:`Graph`.

    While a stream captures, the stand-in records RawKernel launches and cuBLAS calls made on it (by pointer, as
    a CUDA graph does) and refuses any other device work (CuPy would capture an array operation too; minirnn's
    captured loops make none, and a stray one would show here)."""

    _next_ptr = 0x1000

    def __init__(self, null=False, non_blocking=False, ptr=None, priority=0):
        if ptr is None and not null:
            ptr, Stream._next_ptr = Stream._next_ptr, Stream._next_ptr + 0x10
        self.ptr = ptr or 0
        _stream_registry[self.ptr] = self
        self.recording = None  # the captured launches while capturing, else None
        self._outer = []

    def synchronize(self):
        if self.recording is not None:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: synchronizing a capturing stream")

    def __enter__(self):
        self._outer.append(_streams["current"])
        _streams["current"] = self
        return self

    def __exit__(self, *exc):
        _streams["current"] = self._outer.pop()
        return False

    def begin_capture(self, mode=None):
        if self.ptr in (0, 1):
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if self.recording is not None:
            raise RuntimeError("cudaErrorIllegalState: the stream is capturing already")
        self.recording = []

    def end_capture(self):
        if self.recording is None:
            raise RuntimeError("cudaErrorIllegalState: the stream is not capturing")
        graph, self.recording = Graph(self.recording), None
        return graph

    def is_capturing(self):
        return self.recording is not None


_streams = {"current": Stream(null=True)}


def get_current_stream():
    return _streams["current"]


def _capturing():
    """The current stream's list of captured launches, or None when it does not capture."""
    return _streams["current"].recording


def _not_capturing(what):
    if _capturing() is not None:
        raise RuntimeError(f"the stand-in does not capture {what} (only RawKernel launches and cuBLAS calls)")


class _Pointer:
    """A kernel's array argument as a graph holds it: its address and layout, not the array."""

    def __init__(self, value):
        cai = value.__cuda_array_interface__
        self.__cuda_array_interface__ = dict(cai)
        dtype = np.dtype(cai["typestr"])
        self.ptr, self.nbytes = cai["data"][0], int(np.prod(cai["shape"])) * dtype.itemsize


class Graph:
    """Captured launches, replayed in order by :meth:`launch`; a replay checks that each array argument
    still lies in live device memory (a graph keeps addresses, and a freed buffer is a bug)."""

    def __init__(self, launches):
        self.launches = launches
        self.replays = 0

    def launch(self, stream=None):
        _not_capturing("a graph launch")
        for replay in self.launches:
            replay()
        self.replays += 1

    def upload(self, stream=None):
        pass


def _live(ptr, nbytes, what):
    if nbytes and allocation_of(ptr, nbytes) is None:
        raise RuntimeError(f"a graph replay {what} at {ptr:#x} ({nbytes} bytes): not live device memory any more")


class CUBLASError(RuntimeError):
    """A cuBLAS call cuBLAS would refuse, or one on memory that is not a device array."""


_handles: dict = {}


def get_cublas_handle():
    handle = 1
    _handles.setdefault(handle, {"stream": 0, "pointer_mode": 0, "math_mode": 0, "workspace": None})
    return handle


def create():
    """A new handle (``cublas.create``)."""
    handle = max(_handles, default=1) + 1
    _handles[handle] = {"stream": 0, "pointer_mode": 0, "math_mode": 0, "workspace": None}
    return handle


def _handle(handle):
    if handle not in _handles:
        raise CUBLASError(f"CUBLAS_STATUS_NOT_INITIALIZED: {handle!r} is not a handle from get_cublas_handle()")
    return _handles[handle]


def _stream_of(ptr):
    """The stream object with this handle, or None (the default stream, or one gone)."""
    stream = _streams["current"]
    return stream if stream.ptr == ptr else _stream_registry.get(ptr)


def _set_stream(handle, stream_ptr):
    """CuPy's ``cublas.setStream``: it refuses a stream that is capturing (CuPy's check, not cuBLAS's)."""
    stream = _stream_of(stream_ptr)
    if stream is not None and stream.recording is not None:
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")
    state = _handle(handle)
    state["stream"], state["workspace"] = stream_ptr, None  # cuBLAS: back to the default workspace


def _matrix(ptr, rows, cols, ld, dtype, what, routine):
    """A column-major ``rows x cols`` matrix with leading dimension ``ld`` at device address ``ptr``."""
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    if ld < max(1, rows):
        raise CUBLASError(f"CUBLAS_STATUS_INVALID_VALUE: {routine}: ld{what}={ld} < max(1, {rows})")
    count = (cols - 1) * ld + rows if rows and cols else 0
    owner = allocation_of(ptr, count * size)
    if count and owner is None:
        raise CUBLASError(f"{routine}: {what} ({rows} x {cols}, ld {ld}) at {ptr:#x} is not inside one device array")
    if count and owner.dtype != dtype:
        raise CUBLASError(f"{routine}: {what} lies in a {owner.dtype} array; the routine reads {dtype}")
    flat = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))),
                                 (max(count, 1),))
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (size, ld * size))


def _scalar(ptr, dtype, mode, routine):
    """alpha or beta: host memory in pointer mode host, device memory otherwise."""
    dtype = np.dtype(dtype)
    if mode == 1 and allocation_of(ptr, dtype.itemsize) is None:
        raise CUBLASError(f"{routine}: pointer mode device, but alpha/beta at {ptr:#x} is not device memory")
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))), (1,))[0]


def _product(dtype, routine, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """``C = alpha op(A) op(B) + beta C``, column-major, op(A) m x k, op(B) k x n, alpha and beta values."""
    if transa not in (0, 1) or transb not in (0, 1):
        raise CUBLASError(f"{routine}: the stand-in models CUBLAS_OP_N and CUBLAS_OP_T only")
    a = _matrix(A, *((m, k) if transa == 0 else (k, m)), lda, dtype, "A", routine)
    b = _matrix(B, *((k, n) if transb == 0 else (n, k)), ldb, dtype, "B", routine)
    c = _matrix(C, m, n, ldc, dtype, "C", routine)
    product = (a if transa == 0 else a.T) @ (b if transb == 0 else b.T)
    if beta == 0:  # cuBLAS does not read C then (it may hold NaN)
        c[...] = alpha * product
    else:
        c[...] = alpha * product + beta * c


def _gemm(dtype, routine, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, batch=None):
    """cuBLAS's gemm (``batch``: ``(strideA, strideB, strideC, count)`` in elements for the strided-batched one),
    on the handle's stream: done now, or recorded with alpha and beta as they are now when that stream captures."""
    state = _handle(handle)
    alpha = _scalar(alpha, dtype, state["pointer_mode"], routine)
    beta = _scalar(beta, dtype, state["pointer_mode"], routine)
    size = np.dtype(dtype).itemsize
    sa, sb, sc, count = batch or (0, 0, 0, 1)

    def run():
        for i in range(count):
            _product(dtype, routine, transa, transb, m, n, k, alpha, A + i * sa * size, lda, B + i * sb * size, ldb,
                     beta, C + i * sc * size, ldc)
    stream = _stream_of(state["stream"])
    if stream is not None and stream.recording is not None:
        stream.recording.append(run)
    else:
        run()


def _cupy_gemm(dtype, routine, batched):
    """CuPy's binding: it sets the handle's stream to the current one first (and so refuses a capture)."""
    def call(handle, *args):
        _set_stream(handle, _streams["current"].ptr)
        if batched:
            ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count = args
            _gemm(dtype, routine, handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, (sa, sb, sc, count))
        else:
            _gemm(dtype, routine, handle, *args)
    return call


class Libcublas:
    """The cuBLAS library as ``ctypes`` shows it (what ``cuda_graphs.libcublas()`` returns): C functions that
    return a status, take the handle's stream as it is, and are recorded when that stream captures."""

    def __init__(self):
        def gemm(dtype, routine):
            def call(handle, *args):
                _gemm(dtype, routine, handle, *args)
                return 0
            call.__name__ = routine
            return call

        def batched(dtype, routine):
            def call(handle, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count):
                _gemm(dtype, routine, handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, (sa, sb, sc, count))
                return 0
            call.__name__ = routine
            return call

        self.cublasSgemm_v2 = gemm(np.float32, "cublasSgemm_v2")
        self.cublasDgemm_v2 = gemm(np.float64, "cublasDgemm_v2")
        self.cublasSgemmStridedBatched = batched(np.float32, "cublasSgemmStridedBatched")
        self.cublasDgemmStridedBatched = batched(np.float64, "cublasDgemmStridedBatched")

    @staticmethod
    def cublasCreate_v2(handle_pointer):
        handle_pointer.contents.value = create()
        return 0

    @staticmethod
    def cublasSetStream_v2(handle, stream_ptr):  # cuBLAS itself: a capturing stream is fine
        state = _handle(handle)
        state["stream"], state["workspace"] = stream_ptr or 0, None
        return 0

    @staticmethod
    def cublasSetPointerMode_v2(handle, mode):
        _handle(handle)["pointer_mode"] = mode
        return 0

    @staticmethod
    def cublasSetMathMode(handle, mode):
        _handle(handle)["math_mode"] = mode
        return 0

    @staticmethod
    def cublasSetWorkspace_v2(handle, ptr, nbytes):
        if allocation_of(ptr, nbytes) is None:
            raise CUBLASError(f"cublasSetWorkspace: {nbytes} bytes at {ptr:#x} are not device memory")
        _handle(handle)["workspace"] = (ptr, nbytes)
        return 0


def _cublas_module():
    cublas = types.ModuleType("cupy.cuda.cublas")
    cublas.__dict__.update(
        CUBLAS_OP_N=0, CUBLAS_OP_T=1, CUBLAS_OP_C=2, CUBLAS_POINTER_MODE_HOST=0, CUBLAS_POINTER_MODE_DEVICE=1,
        CUBLAS_DEFAULT_MATH=0, CUBLAS_TENSOR_OP_MATH=1, CUBLAS_PEDANTIC_MATH=2, CUBLAS_TF32_TENSOR_OP_MATH=3,
        create=create,
        setStream=_set_stream,
        getStream=lambda h: _handle(h)["stream"],
        setPointerMode=lambda h, mode: _handle(h).__setitem__("pointer_mode", mode),
        getPointerMode=lambda h: _handle(h)["pointer_mode"],
        setMathMode=lambda h, mode: _handle(h).__setitem__("math_mode", mode),
        getMathMode=lambda h: _handle(h)["math_mode"],
        sgemm=_cupy_gemm(np.float32, "sgemm", False),
        dgemm=_cupy_gemm(np.float64, "dgemm", False),
        sgemmStridedBatched=_cupy_gemm(np.float32, "sgemmStridedBatched", True),
        dgemmStridedBatched=_cupy_gemm(np.float64, "dgemmStridedBatched", True),
    )
    return cublas


def _cuda_module():
    cuda = types.ModuleType("cupy.cuda")
    device = types.ModuleType("cupy.cuda.device")
    device.__dict__.update(Device=Device, get_cublas_handle=get_cublas_handle)
    runtime = types.ModuleType("cupy.cuda.runtime")
    runtime.__dict__.update(getDeviceCount=lambda: 1, deviceSynchronize=lambda: None, getDevice=lambda: 0,
                            getDeviceProperties=lambda device: {"name": b"CuPy stand-in (tests/fake_cupy.py)",
                                                                "multiProcessorCount": MULTIPROCESSORS})
    cuda.__dict__.update(Device=Device, Stream=Stream, get_current_stream=get_current_stream, device=device, runtime=runtime,
                         cublas=_cublas_module(), MemoryPointer=MemoryPointer)
    return cuda


class MemoryPool:
    """``cupy.get_default_memory_pool()``: the stand-in has no pool (NumPy allocates); its blocks are all in use."""

    def free_all_blocks(self, stream=None):
        pass

    def used_bytes(self):
        return sum(owner.nbytes for owner in list(_allocations.values()))

    total_bytes = used_bytes


_POOL = MemoryPool()


# ---- installing it as "cupy" ---------------------------------------------------------------------
_PUBLIC = dict(ndarray=ndarray, array=array, asarray=asarray, asanyarray=asanyarray, asnumpy=asnumpy,
               get_array_module=get_array_module, empty=empty, empty_like=empty_like, full=full, RawModule=RawModule,
               RawKernel=RawKernel, ElementwiseKernel=ElementwiseKernel, get_default_memory_pool=lambda: _POOL)


def make_module() -> types.ModuleType:
    """A fresh ``cupy`` module object backed by this stand-in."""
    cp = types.ModuleType("cupy", "NumPy-backed CuPy stand-in (tests/fake_cupy.py)")
    cp.__dict__.update(_PUBLIC, cuda=_cuda_module(), __getattr__=_module_getattr,
                       __spec__=importlib.machinery.ModuleSpec("cupy", None), __version__="0.0-stand-in")
    return cp


@contextlib.contextmanager
def installed():
    """``sys.modules["cupy"]`` (and its ``cuda`` submodules) is the stand-in inside the block; restored after."""
    cp = make_module()
    names = {"cupy": cp, "cupy.cuda": cp.cuda, "cupy.cuda.cublas": cp.cuda.cublas, "cupy.cuda.device": cp.cuda.device,
             "cupy.cuda.runtime": cp.cuda.runtime}
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(names)
    try:
        yield cp
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
