"""Reading and writing weights files: the file-level pieces (DESIGN §7, STYLE P14).

This module knows the bytes on disk and nothing about models:

* :func:`atomic_savez` writes a ``.npz`` so that a crash or an exception never leaves a torn file.
* :func:`read_npz` reads a ``.npz`` with ``allow_pickle=False``. PsychRNN files hold a few object
  arrays (``dale_ratio`` as a 0-d object array holding ``None``; on PsychRNN master a pickled
  TensorFlow ``transfer_function``); those members are read with a restricted unpickler that
  accepts only ``None``, numbers and TensorFlow/Keras activation functions *by reference*, which
  it maps to minirnn's names (``"relu"``, ``"tanh"``, ...) without importing TensorFlow.
  Anything else is refused: a weights file must never run code.
* :func:`classify_weights` tells what a loaded dict is: minirnn or PsychRNN format, Basic or LSTM,
  which keys are optimizer slots, the Dale ratio, the meaning of ``Dale_out`` and the transfer
  function.

Reading and writing PsychRNN's *file format* lives here; what a file's arrays mean for a model
lives with the model-level glue built on these pieces: :mod:`minirnn._model_files` (``save_model``,
``load_weights_for_model``, re-exported at the end of this module) and the models themselves --
the LSTM turns PsychRNN's ``(N_rec + N_in, N_rec)`` gate matrices and per-row
``init_hidden``/``init_cell`` into its own layout in ``LSTM._given_array``, the one place that
also reads those layouts from a user's params.
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import os
import pickle
import tempfile
import zipfile
import zlib
from typing import Any, Dict, Mapping, Optional

import numpy as np

from minirnn.errors import WeightsFileError

__all__ = [
    "ACTIVATION_NAMES",
    "atomic_open",
    "atomic_savez",
    "atomic_write_text",
    "is_temporary_of",
    "jsonable",
    "read_npz",
    "classify_weights",
    "lstm_weights_evidence",
    "restricted_loads",
]

#: The transfer-function names a PsychRNN file can be mapped to.
ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "softplus", "linear")

# Function names (last component of the pickled qualified name) -> minirnn name.
_ACTIVATION_ALIASES = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "softplus": "softplus",
    "linear": "linear",
    "identity": "linear",
}

# Top-level packages whose activation functions are accepted by reference. ``tensorflow_core``
# is where TF 1.15 / 2.0 put the ops; ``tf_keras`` is Keras 2 for TF >= 2.16.
_TF_PACKAGES = ("tensorflow", "tensorflow_core", "keras", "tf_keras", "tf")

# The numpy globals that ``np.save`` needs to pickle an object ndarray (protocol 3). Reconstructing
# an empty ndarray / dtype / scalar runs no user code; the contents are checked afterwards.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
}


# ---------------------------------------------------------------------------------------------
# writing


def _with_npz_suffix(path: "os.PathLike[str] | str") -> str:
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    return path if path.endswith(".npz") else path + ".npz"


#: every temporary file minirnn writes starts with this (see :func:`_temporary_prefix`)
TEMPORARY_PREFIX = ".minirnn-"


def _temporary_prefix(final_name: str) -> str:
    """The start of a temporary file's name for the target ``final_name`` (a base name).

    A fixed prefix and 8 hex digits of the target's name: short whatever the target's length (a
    target name near the filesystem's NAME_MAX still has a temporary name that fits), yet
    :func:`is_temporary_of` can tell whose temporary file it is. ``mkstemp`` adds 8 random
    characters and ``.tmp``: 30 bytes in all.
    """
    digest = hashlib.sha1(os.fsencode(final_name)).hexdigest()[:8]
    return f"{TEMPORARY_PREFIX}{digest}-"


def is_temporary_of(name: str, final_name: str) -> bool:
    """Whether the file ``name`` (a base name) is a temporary file that :func:`atomic_open` made
    while writing ``final_name``, in this version's naming (``.minirnn-<hash>-XXXXXXXX.tmp``) or
    in older versions' (``.<final_name>.XXXXXXXX.tmp``)."""
    if not name.endswith(".tmp"):
        return False
    return name.startswith(_temporary_prefix(final_name)) or name.startswith(f".{final_name}.")


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", *, encoding: Optional[str] = None, newline: Optional[str] = None):
    """Open a temporary file beside ``path``; on a clean exit, fsync it and move it over ``path``.

    The one place where minirnn writes files (weights, checkpoints, run records, summaries): a kill
    or an exception at any moment leaves either the old file or the new one, never a torn one, and
    no temporary file behind. The directory must exist. A symbolic link is followed, as ``open``
    follows it: its target is replaced and the link stays. The temporary file's name is short
    (:func:`_temporary_prefix`), so any name the filesystem allows can be written.

    A text ``mode`` writes UTF-8 unless ``encoding`` says otherwise, never the locale's encoding
    (cp1252 on most Windows machines, which cannot encode most non-Latin text); ``newline`` is
    ``open``'s.
    """
    text = "b" not in mode
    options = {"encoding": encoding or "utf-8", "newline": newline} if text else {}
    path = os.path.realpath(os.fspath(path))  # write through a symlink, never over it
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(os.path.basename(path)), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, **options) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file 0600; give it the mode a plain open() would have given it.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux: /proc/self/status).
    Elsewhere it is set and put back at once, to 0o077 in between: a file another thread creates in
    that instant gets a stricter mode, never a looser one."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def _name_max(directory: str) -> int:
    """The longest file name (in bytes) the filesystem of ``directory`` allows; 255 when it cannot say."""
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf
        return 255


def _name_length(name: str, directory: str) -> tuple:
    """``(length, limit, unit)``: how long the file name ``name`` is in the unit the filesystem of
    ``directory`` counts, and the most it allows. Windows (NTFS, exFAT, FAT's long names) allows
    255 UTF-16 code units, whatever their UTF-8 length (one for a CJK character, which is 3 UTF-8
    bytes; two for an emoji); POSIX filesystems allow NAME_MAX bytes of the encoded name."""
    if os.name == "nt":
        return len(name.encode("utf-16-le", "surrogatepass")) // 2, 255, "UTF-16 code units"
    return len(os.fsencode(name)), _name_max(directory), "bytes"


def check_writable(path, what: str, npz: bool = True, suffix: str = "", create_dir: bool = False) -> None:
    """Raise ParameterError now, before any work, when ``path + suffix`` could not be written later.

    ``what`` names the setting in the message (``"save_weights_path"``); with ``npz``, ``.npz`` is
    appended as :func:`atomic_savez` will. The directory must exist (``create_dir``: it is made, as
    PsychRNN makes the folders of its weight paths) and be writable; the target must not be a directory,
    and its name must fit the filesystem (NAME_MAX bytes, 255 on most; on Windows 255 UTF-16 code
    units).
    """
    from .errors import ParameterError

    final = os.fspath(path) + suffix
    final = _with_npz_suffix(final) if npz else final
    directory = os.path.dirname(os.path.abspath(final))
    if create_dir and not os.path.isdir(directory):
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise ParameterError(f"{what} {os.fspath(path)!r}: cannot create the directory {directory!r} "
                                 f"({exc.strerror}).") from None
    if not os.path.isdir(directory):
        raise ParameterError(f"{what} {os.fspath(path)!r}: the directory {directory!r} does not exist.")
    if os.path.isdir(final):
        raise ParameterError(f"{what} {os.fspath(path)!r}: {final!r} is a directory, not a file.")
    if not os.access(directory, os.W_OK):
        raise ParameterError(f"{what} {os.fspath(path)!r}: the directory {directory!r} is not writable.")
    name = os.path.basename(final)
    length, limit, unit = _name_length(name, directory)
    if length > limit:
        raise ParameterError(f"{what} {os.fspath(path)!r}: the file name {name[:40]!r}... is "
                             f"{length} {unit} long, but the filesystem of {directory!r} allows "
                             f"at most {limit} {unit} in a file name. Give a shorter name.")


def jsonable(value, fallback=repr):
    """Plain Python for JSON: dicts and sequences recursively, arrays -> lists, NumPy scalars ->
    numbers; anything else becomes ``fallback(value)``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, fallback) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, fallback) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return fallback(value)


def atomic_write_text(path, text: str) -> str:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`) in UTF-8, its line ends as
    given (``newline=""``, as the csv module wants: the same bytes on every OS); returns the path."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return os.fspath(path)


def atomic_savez(path: "os.PathLike[str] | str", arrays: Mapping[str, Any], *,
                 compress: bool = False) -> str:
    """Write ``arrays`` to ``path`` as a ``.npz`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; ``.npz`` is appended when it lacks it, as ``np.savez`` does.
    arrays : mapping of str to array_like
        The members. Keys may contain ``/`` (PsychRNN's ``W_rec/Adam``).
    compress : bool, optional
        Use ``np.savez_compressed`` (default False, like PsychRNN's ``np.savez``).

    Returns
    -------
    str
        The path actually written.

    Raises
    ------
    FileNotFoundError
        The target directory does not exist.

    Notes
    -----
    The data go to a temporary file in the same directory, which is flushed and fsync'ed and then
    moved over ``path`` with ``os.replace`` (atomic on POSIX and Windows). If anything fails,
    including ``KeyboardInterrupt``, the temporary file is removed and an existing file at
    ``path`` is left untouched: there is never a torn weights file.
    """
    final = _with_npz_suffix(path)
    directory = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {final!r}: directory {directory!r} does not exist")
    arrays = dict(arrays)
    for key in arrays:
        if not isinstance(key, str) or not key:
            raise WeightsFileError(f"cannot save {final!r}: array names must be non-empty "
                                   f"strings, got {key!r}")
    with atomic_open(final) as fh:
        # Passing a file object stops numpy from appending a second ".npz".
        (np.savez_compressed if compress else np.savez)(fh, **arrays)
    _fsync_dir(directory)
    return final


def _fsync_dir(directory: str) -> None:
    """Make the rename durable where the platform allows it (best effort, POSIX only)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------------------------------
# the restricted unpickler


class _Refused(Exception):
    """Internal: the pickle references a global the loader does not allow."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only numpy's object-array reconstruction and TF/Keras activations by name."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        kind = _NUMPY_GLOBALS.get((module, name))
        if kind == "reconstruct":
            return _safe_reconstruct
        if kind == "scalar":
            return _safe_scalar
        if kind == "ndarray":
            return _NDARRAY
        if kind == "dtype":
            return np.dtype
        if module.split(".", 1)[0] in _TF_PACKAGES:
            short = name.rsplit(".", 1)[-1]
            if short in _ACTIVATION_ALIASES:
                return _ActivationRef(_ACTIVATION_ALIASES[short], module, name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {pid!r}")


class _ActivationRef(str):
    """A TF/Keras activation referenced by a pickle; behaves as its minirnn name (a str)."""

    def __new__(cls, our_name: str, module: str, name: str) -> "_ActivationRef":
        obj = super().__new__(cls, our_name)
        obj.source = f"{module}.{name}"
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Only reached if a pickle tries to *call* the function (REDUCE) instead of naming it.
        raise _Refused(f"a call of {self.source}")


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` inside a pickle; only :func:`_safe_reconstruct` accepts it."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Refused("a direct call of numpy.ndarray")


_NDARRAY = _NdarrayToken()


def _safe_reconstruct(subtype: Any, shape: Any = None, dtype_code: Any = None) -> np.ndarray:
    # numpy pickles an ndarray as _reconstruct(ndarray, (0,), b'b') + __setstate__(state);
    # the placeholder is always empty, whatever shape the pickle asks for.
    if subtype is not _NDARRAY:
        raise _Refused(f"reconstruct of {subtype!r}")
    return np.ndarray.__new__(np.ndarray, (0,), dtype=np.uint8)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype):
        raise _Refused("numpy scalar with a non-dtype")
    if dtype.hasobject:
        return data
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused("numpy scalar with bad data")
    return np.frombuffer(data, dtype=dtype)[0]


def _check_contents(obj: Any) -> Any:
    """Accept None, bool, int, float, numpy numbers and activation names; refuse the rest."""
    if obj is None or isinstance(obj, (bool, int, float, np.number, np.bool_)):
        return obj
    if isinstance(obj, _ActivationRef):
        return str(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            out = np.empty(obj.shape, dtype=object)
            for idx, item in np.ndenumerate(obj):
                out[idx] = _check_contents(item)
            return out
        return obj
    raise _Refused(f"an object of type {type(obj).__name__}")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only None, numbers and TF/Keras activations (as names).

    Parameters
    ----------
    data : bytes
        A pickle, e.g. the payload of an object-array ``.npy`` member.

    Returns
    -------
    object
        None, a number, a transfer-function name (str) or an object ndarray of those.

    Raises
    ------
    pickle.UnpicklingError
        The pickle references anything else (the message names it) or is malformed.

    Notes
    -----
    Allowed globals: numpy's object-array reconstruction (``_reconstruct``, ``ndarray`` as a
    token that cannot be called, ``dtype``, ``scalar``) and functions named relu, tanh, sigmoid,
    softplus, linear or identity in a module under ``tensorflow``, ``tensorflow_core``,
    ``keras`` or ``tf_keras`` -- resolved to a name, never imported, never called (e.g.
    ``tensorflow.python.ops.gen_nn_ops.relu`` -> ``"relu"``, ``...array_ops.identity`` ->
    ``"linear"``). This is the primitive :func:`read_npz` uses; it is public for tests and tools.
    """
    try:
        obj = _RestrictedUnpickler(_io.BytesIO(data), encoding="latin1").load()
        return _check_contents(obj)
    except _Refused as exc:
        raise pickle.UnpicklingError(f"refused to unpickle {exc}") from None
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # malformed pickle: bad opcodes, wrong argument types, ...
        raise pickle.UnpicklingError(
            f"malformed pickle ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------------------------
# reading


def _read_object_member(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    """Read one ``.npy`` member holding an object array through the restricted unpickler."""
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:  # (3, 0): utf8 field names; same layout as 2.0 for our purposes
            shape, fortran, dtype = np.lib.format._read_array_header(fh, version)  # noqa: SLF001
        payload = fh.read()
    obj = restricted_loads(payload)
    if not isinstance(obj, np.ndarray):
        obj = np.array(obj, dtype=object)
    if obj.shape != tuple(shape):
        obj = obj.reshape(shape)
    return obj


def read_npz(path: "os.PathLike[str] | str") -> Dict[str, np.ndarray]:
    """Read every array of a ``.npz`` weights file into a plain dict, never running code.

    Parameters
    ----------
    path : str or os.PathLike
        The file. When it does not exist but ``path + ".npz"`` does, that file is read (the name
        :func:`atomic_savez` and ``np.savez`` would have written).

    Returns
    -------
    dict of str to ndarray
        Every member. Object-array members (PsychRNN's ``dale_ratio`` holding None; master's
        pickled ``transfer_function``) come back as object arrays holding None, a number or a
        name from :data:`ACTIVATION_NAMES` (``tf.nn.relu`` -> ``array('relu', dtype=object)``).

    Raises
    ------
    FileNotFoundError
        No such file (the message names it).
    WeightsFileError
        Not a ``.npz`` file, truncated or corrupt, a member failing its CRC (the message names
        the file), or a member holding an object the loader refuses to unpickle (it names the
        file and the key).

    Notes
    -----
    Plain arrays are read with ``np.load(path, allow_pickle=False)``; object arrays through
    :func:`restricted_loads`. TensorFlow is never imported.
    """
    name = os.fspath(path)
    if not os.path.exists(name) and not str(name).endswith(".npz") and \
            os.path.exists(str(name) + ".npz"):
        name = str(name) + ".npz"
    if not os.path.exists(name):
        raise FileNotFoundError(f"weights file {name!r} does not exist")
    if os.path.isdir(name):
        raise WeightsFileError(f"weights file {name!r} is a directory, not a .npz file")
    if not zipfile.is_zipfile(name):
        raise WeightsFileError(f"{name!r} is not a .npz weights file (not a zip archive; "
                               "truncated, corrupt, or another format)")
    out: Dict[str, np.ndarray] = {}
    try:
        # numpy stops reading a member at its last array byte, so zipfile never gets to check
        # the CRC; check every member first so that a flipped bit is not loaded silently.
        with zipfile.ZipFile(name) as zf:
            bad = zf.testzip()
        if bad is not None:
            raise WeightsFileError(f"{name!r} is corrupt: member {bad!r} fails its CRC check")
        with np.load(name, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - zip checked above
                raise WeightsFileError(f"{name!r} is not a .npz weights file")
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    try:
                        out[key] = _read_object_member(npz.zip, key + ".npy")
                    except pickle.UnpicklingError as uexc:
                        raise WeightsFileError(
                            f"{name!r}: key {key!r} holds an object the loader refuses to "
                            f"unpickle ({uexc}); minirnn only reads None, numbers and "
                            f"transfer-function names {ACTIVATION_NAMES} from pickled members"
                        ) from None
    except WeightsFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, KeyError, OSError,
            pickle.UnpicklingError, TypeError, AttributeError, IndexError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise WeightsFileError(f"{name!r} is not a readable .npz weights file (truncated or "
                               f"corrupt): {type(exc).__name__}: {exc}") from exc
    return out


# ---------------------------------------------------------------------------------------------
# classifying

_LSTM_KEYS = ("W_f", "W_i", "W_c", "W_o")


def _scalar_item(value: Any) -> Any:
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if arr.shape != ():
        if arr.size == 1:
            arr = arr.reshape(())
        else:
            raise WeightsFileError(f"expected a scalar, got an array of shape {arr.shape}")
    return arr.item()


def _read_meta(raw: Any) -> Dict[str, Any]:
    """The ``minirnn`` entry of a weights file (a JSON string, as a 0-d array) as a dict.

    Raises WeightsFileError when it is not a JSON string or not a JSON object.
    """
    try:
        text = _scalar_item(raw)
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        meta = json.loads(text)
    except (ValueError, TypeError, WeightsFileError) as exc:
        raise WeightsFileError(f"the 'minirnn' entry is not a JSON string: {exc}") from None
    if not isinstance(meta, dict):
        raise WeightsFileError("the 'minirnn' entry is JSON but not an object")
    return meta


def lstm_weights_evidence(weights: Any) -> Optional[str]:
    """Why a weights dict is an LSTM's, as a phrase, or None when nothing says so.

    ``LSTM.get_weights()`` carries PsychRNN's all-zero placeholders ``W_in, W_rec, b_rec,
    init_state`` beside the gate weights, so a dict with a ``W_rec`` is not necessarily a rate
    network: any of the gate keys ``W_f, W_i, W_c, W_o``, an ``lstm_variant`` entry or a
    ``minirnn`` metadata entry with ``architecture="lstm"`` mark it as an LSTM's. Unreadable
    metadata says nothing here (reading the file is :func:`classify_weights`' business).
    """
    if not hasattr(weights, "keys"):
        return None
    gates = [k for k in _LSTM_KEYS if k in weights]
    if gates:
        return f"it has the LSTM gate weights {gates}"
    variant = weights.get("lstm_variant") if hasattr(weights, "get") else None
    if variant is not None and not (isinstance(variant, np.ndarray) and variant.dtype == object
                                    and variant.ndim == 0 and variant.item() is None):
        return f"it has an lstm_variant entry ({variant!r})"
    if "minirnn" in weights:
        try:
            meta = _read_meta(weights["minirnn"])
        except WeightsFileError:
            meta = {}
        if meta.get("architecture") == "lstm":
            return "its minirnn metadata says architecture='lstm'"
    return None


def classify_weights(arrays: Mapping[str, Any]) -> Dict[str, Any]:
    """Describe a dict of arrays read from a weights file (a pure function).

    Parameters
    ----------
    arrays : mapping of str to array_like
        What :func:`read_npz` returned (or any dict of the same keys).

    Returns
    -------
    dict
        With the keys:

        * ``format``: ``"minirnn"`` when a ``minirnn`` JSON string key exists, else ``"psychrnn"``;
        * ``meta``: the parsed ``minirnn`` JSON (a dict), or None;
        * ``architecture``: ``"lstm"`` when the LSTM gate weights ``W_f, W_i, W_c, W_o`` are
          present, ``"basic"`` when ``W_rec`` is;
        * ``weight_keys``: the sorted keys that are not optimizer slots;
        * ``optimizer_slots``: the sorted keys that are optimizer slots (any key with a ``/``, such
          as ``W_rec/Adam``, ``W_rec/Adam_1``);
        * ``dale_ratio``: None or a float (``0.0`` is returned as is; PsychRNN treats it as "off");
        * ``dale_out``: ``"pm1"`` when ``Dale_out`` has -1 entries (PsychRNN 1.0.0: inhibitory
          units read out negatively), ``"01"`` otherwise, None when there is no ``Dale_out``;
        * ``transfer_function``: a name from :data:`ACTIVATION_NAMES` or None (from the ``minirnn``
          JSON, else from a ``transfer_function`` key).

    Raises
    ------
    WeightsFileError
        The dict is neither a Basic nor an LSTM weights set, the ``minirnn`` entry is not a JSON
        object, or ``dale_ratio`` is neither None nor a number.
    """
    keys = list(arrays.keys())
    meta: Optional[Dict[str, Any]] = None
    fmt = "psychrnn"
    if "minirnn" in arrays:
        fmt = "minirnn"
        meta = _read_meta(arrays["minirnn"])

    slots = sorted(k for k in keys if "/" in k)
    weight_keys = sorted(k for k in keys if "/" not in k)

    if all(k in arrays for k in _LSTM_KEYS):
        arch = "lstm"
    elif "W_rec" in arrays:
        arch = "basic"
    else:
        missing = [k for k in ("W_in", "W_rec", "W_out") if k not in arrays]
        raise WeightsFileError(
            "the file is neither a Basic weights file (needs W_rec) nor an LSTM one (needs "
            f"{', '.join(_LSTM_KEYS)}); missing {missing}; keys present: {sorted(keys)}")

    dale_ratio: Optional[float] = None
    if "dale_ratio" in arrays:
        value = _scalar_item(arrays["dale_ratio"])
        if value is not None:
            try:
                dale_ratio = float(value)
            except (TypeError, ValueError):
                raise WeightsFileError(f"dale_ratio must be None or a number, got {value!r}") \
                    from None
            if dale_ratio != dale_ratio:  # NaN stands for None in numeric-only files
                dale_ratio = None

    dale_out: Optional[str] = None
    if "Dale_out" in arrays:
        dale_out = "pm1" if bool(np.any(np.asarray(arrays["Dale_out"]) < 0)) else "01"

    transfer: Optional[str] = None
    if meta is not None and isinstance(meta.get("transfer_function"), str):
        transfer = meta["transfer_function"]
    elif "transfer_function" in arrays:
        value = _scalar_item(arrays["transfer_function"])
        if value is not None:
            transfer = str(value)

    return {
        "format": fmt,
        "meta": meta,
        "architecture": arch,
        "weight_keys": weight_keys,
        "optimizer_slots": slots,
        "dale_ratio": dale_ratio,
        "dale_out": dale_out,
        "transfer_function": transfer,
    }


# ---------------------------------------------------------------------------------------------
# model level (kept in its own module, re-exported here so that ``minirnn.io`` is the one import for files)
from minirnn._model_files import (  # noqa: E402,F401
    load_weights_for_model, read_weights_file, save_model, weight_arrays)
