"""Model-level save / load on top of :mod:`minirnn.io`'s file pieces (re-exported there).

``save_model`` writes PsychRNN's keys (effective weights, masks, N×N ``Dale_rec``/``Dale_out``,
``dale_ratio``) plus one ``minirnn`` JSON string; ``load_weights_for_model`` reads a file of ours
or PsychRNN's for a model being built, checks it fits the model's architecture, and returns the
effective weights to be taken as raw parameters (same outputs, bit for bit).
"""
from __future__ import annotations

import json
import warnings

import numpy as np

from .errors import WeightsFileError


def save_model(model, save_path) -> str:
    """Write ``model``'s weights to ``save_path`` (``.npz`` appended when missing), atomically."""
    from .io import atomic_savez

    weights = model.get_weights()
    arrays = {}
    for key, value in weights.items():
        if key == "dale_ratio":
            arrays[key] = np.array(None, dtype=object) if value is None else np.array(float(value))
        elif isinstance(value, np.ndarray):
            arrays[key] = value
    arrays["minirnn"] = np.array(json.dumps(model.metadata()))
    return atomic_savez(save_path, arrays)


def read_weights_file(path, architecture: str, building: str, required=(), hint: str = "", stacklevel: int = 4):
    """Read a weights file safely; check it holds ``architecture`` weights and every ``required`` key.

    ``building`` names what is being built, ``hint`` is added to the wrong-architecture message.
    Optimizer slots (``W_rec/Adam``) give one warning. Returns ``(arrays, info)``, ``info`` from
    :func:`minirnn.io.classify_weights`.
    """
    from .io import classify_weights, read_npz

    arrays = read_npz(path)
    info = classify_weights(arrays)
    if info["architecture"] != architecture:
        raise WeightsFileError(f"{path} holds {info['architecture'].upper()} weights but the model being built is "
                               f"{building}.{hint}")
    missing = [key for key in required if key not in arrays]
    if missing:
        raise WeightsFileError(f"{path} has no {missing} entries; a weights file needs {list(required)}. "
                               f"Keys present: {sorted(arrays)}.")
    if info["optimizer_slots"]:
        warnings.warn(f"{path}: ignoring {len(info['optimizer_slots'])} optimizer-state entries "
                      f"(e.g. {info['optimizer_slots'][0]!r}); minirnn keeps optimizer state out of weights files.",
                      stacklevel=stacklevel)
    return arrays, info


def weight_arrays(arrays) -> dict:
    """The weights of a file's arrays: no optimizer slots (``W_rec/Adam``), no ``minirnn`` record, no
    object arrays (PsychRNN's ``dale_ratio`` holding None)."""
    return {k: np.asarray(v) for k, v in arrays.items()
            if "/" not in k and k != "minirnn" and np.asarray(v).dtype != object}


def warn_alpha_conflict(params, meta, weights_path, owner, consequence, stacklevel=2):
    """Warn when ``params`` set an alpha other than the one a weights file's network was trained with.

    ``params`` give alpha as ``alpha`` or as ``dt / tau``; the file's is ``dt / tau`` from its
    ``minirnn`` record ``meta``. A file without dt and tau in its record (PsychRNN's) or params
    without an alpha say nothing. ``consequence`` ends the message (what the caller runs with and
    how to change it); ``stacklevel`` counts from the caller of this function, as for ``warnings.warn``.
    The params are never changed here.
    """
    meta = meta or {}
    gives_alpha = params.get("alpha") is not None or (params.get("dt") is not None and params.get("tau") is not None)
    if not ("dt" in meta and "tau" in meta) or not gives_alpha:
        return
    try:
        file_alpha = np.asarray(meta["dt"], dtype=np.float64) / np.asarray(meta["tau"], dtype=np.float64)
        if params.get("alpha") is not None:
            given, how = np.asarray(params["alpha"], dtype=np.float64), f"alpha={params['alpha']!r}"
        else:
            given = np.asarray(params["dt"], dtype=np.float64) / np.asarray(params["tau"], dtype=np.float64)
            how = f"dt={params['dt']!r}, tau={params['tau']!r}"
        same = np.allclose(*np.broadcast_arrays(given, file_alpha), rtol=1e-9, atol=0)
    except ValueError:  # per-unit values of different lengths
        same = False
    if not same:
        warnings.warn(f"{owner}: params give {how} but {weights_path} was trained with dt={meta['dt']!r}, "
                      f"tau={meta['tau']!r}; {consequence}", UserWarning, stacklevel=stacklevel + 1)


def load_weights_for_model(path, model) -> dict:
    """Read a weights file for ``model`` (being built).

    Returns ``{"weights": name -> array, "dale_ratio": float | None, "transfer_function": name |
    None, "Dale_out": N×N array when the file is PsychRNN 1.0.0's ±1 kind, else absent}``.
    Raises :class:`WeightsFileError` naming the file when it is of another architecture or size.
    """
    kind = getattr(model, "architecture", "basic")
    arrays, info = read_weights_file(path, kind, f"{type(model).__name__} ({kind})", required=model.param_names,
                                     stacklevel=6)
    sizes = {"N_in": model.N_in, "N_rec": model.N_rec, "N_out": model.N_out}
    expected = model.weight_file_shapes() if hasattr(model, "weight_file_shapes") else {
        "W_in": (sizes["N_rec"], sizes["N_in"]), "W_rec": (sizes["N_rec"], sizes["N_rec"]),
        "W_out": (sizes["N_out"], sizes["N_rec"])}
    for key, shape in expected.items():
        if key not in arrays:
            raise WeightsFileError(f"{path} has no {key!r} entry; keys present: {sorted(arrays)}.")
        got = tuple(np.shape(arrays[key]))
        if got != tuple(shape):
            raise WeightsFileError(f"{path}: {key} has shape {got} but this model (N_in={model.N_in}, "
                                   f"N_rec={model.N_rec}, N_out={model.N_out}) needs {tuple(shape)}.")
    weights = weight_arrays(arrays)
    out = {"weights": weights, "dale_ratio": info["dale_ratio"] or None,
           "transfer_function": info["transfer_function"], "meta": info["meta"], "format": info["format"]}
    if info["dale_out"] == "pm1" and out["dale_ratio"] is not None:
        out["Dale_out"] = np.asarray(arrays["Dale_out"])
    elif out["dale_ratio"] is not None and info["format"] == "minirnn" and "Dale_out" in arrays:
        out["Dale_out"] = np.asarray(arrays["Dale_out"])  # our own file: keep its sign convention
    for key in ("input_connectivity", "rec_connectivity", "output_connectivity"):
        weights.setdefault(key, None)
    return out
