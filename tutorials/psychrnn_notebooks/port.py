#!/usr/bin/env python
"""Port a PsychRNN notebook (or script) to minirnn by changing imports only (DESIGN.md §8).

Usage::

    python port.py PerceptualDiscrimination.ipynb              # writes PerceptualDiscrimination.py
    python port.py original/*.ipynb -o .                        # every notebook, into this folder
    python port.py my_script.py -o ported/                      # a plain PsychRNN script

The output is a jupytext "percent" script (``# %%`` cells): it runs as a script and opens as a
notebook in Jupyter with jupytext (``jupytext --to ipynb X.py`` gives back a notebook). No
dependency besides the standard library.

What it changes, line by line, with regular expressions (nothing else is touched):

* ``from psychrnn.tasks.<module> import A``        -> ``from minirnn.tasks import A``
* ``from psychrnn.tasks.task import Task``         -> ``from minirnn import Task``
* ``from psychrnn.backend.<...> import B``         -> ``from minirnn import B`` (Basic, BasicScan, RNN,
  Curriculum, default_metric, Simulator, BasicSimulator, LSTMSimulator, the initializers), with two
  exceptions:

  - ``LSTM`` -> ``from minirnn import PsychRNNLSTM as LSTM``: PsychRNN's LSTM cell is
    ``h' = o * sigmoid(c')``; minirnn's ``LSTM`` defaults to the standard ``tanh`` cell, so the port
    takes the class whose default is PsychRNN's (``lstm_variant="psychrnn"``; an explicit
    ``lstm_variant`` still wins);
  - ``relu``, ``sigmoid`` (``psychrnn.backend.simulation``'s NumPy functions) come from
    ``minirnn.simulate``, and so does the whole line that imports them
* ``tf.nn.relu`` / ``tf.nn.tanh`` / ``tf.nn.sigmoid`` / ``tf.nn.softplus`` -> ``"relu"``, ...
* a TensorFlow 1 optimizer -> the ``minirnn.nn.optimizers`` object with the same values:
  ``AdamOptimizer(learning_rate, beta1, beta2, epsilon)`` -> ``Adam(learning_rate=..., beta1=...,
  beta2=..., epsilon=...)``; ``GradientDescentOptimizer(learning_rate)`` -> ``SGD(...)``;
  ``MomentumOptimizer(learning_rate, momentum, use_nesterov=...)`` -> ``Momentum(learning_rate=...,
  momentum=..., nesterov=...)``; ``RMSPropOptimizer(learning_rate, decay, momentum, epsilon)`` ->
  ``RMSProp(...)``. Positional arguments are read in TF1's order and written as keywords; only
  the arguments given are written, and minirnn's defaults are TF1's. An argument minirnn has no
  counterpart for (``name=``, ``use_locking=True``, ``centered=True``, ``*args``) leaves the call
  unported and reported, never dropped (``use_locking=False``, ``centered=False``, TF1's defaults,
  are what minirnn computes). The import ``from minirnn.nn.optimizers import Adam, ...`` takes the
  place of ``import tensorflow as tf``, so the line count stays the same
* TensorFlow-only statements (``import tensorflow as tf``, ``tf...set_seed(...)``,
  ``tf...disable_eager_execution()``, ``tf...logging.set_verbosity(...)``) and ``%matplotlib
  inline`` become comments (``# [port] removed: ...``), so line numbers keep matching
* the Colab / TensorFlow set-up cell of PsychRNN's documentation notebooks is dropped

Not portable by renaming, so reported with the reason: ``Regularizer`` and ``LossFunction``
(TensorFlow graph classes; minirnn sets the penalties and the loss through the params), and any
other TensorFlow code.

A markdown cell at the top lists every change made. Anything still naming ``tf.`` or ``psychrnn``
afterwards cannot be ported by renaming (TensorFlow model code, say): it is reported, with the
reason, on stderr and in that list, and the script exits with status 1 unless ``--allow-unported``.

``KNOWN_FIXES`` holds the only hand edits, for two of PsychRNN's own notebooks: two bugs in
NewTask.ipynb (it does not run on PsychRNN either) and NewModel.ipynb's TensorFlow model class,
which is TensorFlow code by nature and is replaced by the same model written for minirnn.
They are applied only to files of those names and listed in the header as hand fixes.
"""
from __future__ import annotations

import argparse
import ast
import json
import pathlib
import re
import sys

# ---- the substitutions ------------------------------------------------------------------------

#: psychrnn.backend name -> (minirnn module, minirnn name). Everything PsychRNN's backend exports
#: except the two TensorFlow graph classes in UNPORTABLE.
BACKEND_NAMES = {
    "RNN": ("minirnn", "RNN"), "Basic": ("minirnn", "Basic"), "BasicScan": ("minirnn", "BasicScan"),
    # PsychRNN's LSTM is h' = o * sigmoid(c'); minirnn's LSTM defaults to the standard tanh cell
    "LSTM": ("minirnn", "PsychRNNLSTM"),
    "Curriculum": ("minirnn", "Curriculum"), "default_metric": ("minirnn", "default_metric"),
    "WeightInitializer": ("minirnn", "WeightInitializer"),
    "GaussianSpectralRadius": ("minirnn", "GaussianSpectralRadius"), "AlphaIdentity": ("minirnn", "AlphaIdentity"),
    "Simulator": ("minirnn", "Simulator"), "BasicSimulator": ("minirnn", "BasicSimulator"),
    "LSTMSimulator": ("minirnn", "LSTMSimulator"),
    "relu": ("minirnn.simulate", "relu"), "sigmoid": ("minirnn.simulate", "sigmoid"),
    "Task": ("minirnn", "Task"),
}
#: minirnn.simulate also has the simulators: a line importing relu with BasicSimulator goes there
SIMULATE_NAMES = {"Simulator", "BasicSimulator", "LSTMSimulator", "relu", "sigmoid"}

#: psychrnn.backend names with no minirnn counterpart, and why (reported, the import left as it is)
UNPORTABLE = {
    "Regularizer": "PsychRNN's Regularizer builds TensorFlow graph terms from a model's TF variables; minirnn "
                   "computes each penalty and its gradient inside the model: set L1_in, L1_rec, L1_out, L2_in, "
                   "L2_rec, L2_out, L2_firing_rate or custom_regularization in the params instead",
    "LossFunction": "PsychRNN's LossFunction builds a model's TensorFlow loss graph; minirnn's losses "
                    "(minirnn.nn.losses) return the value and its gradient: set params['loss_function'] "
                    "('mean_squared_error', 'binary_cross_entropy' or a callable) instead",
}

TF_FUNCTIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softplus": "softplus"}

#: TF1 optimizer -> (minirnn.nn.optimizers class, TF1's argument names in TF1's positional order)
TF_OPTIMIZERS = {
    "AdamOptimizer": ("Adam", ("learning_rate", "beta1", "beta2", "epsilon", "use_locking", "name",
                               "use_own_namescope_for_non_slot_vars")),
    "GradientDescentOptimizer": ("SGD", ("learning_rate", "use_locking", "name")),
    "MomentumOptimizer": ("Momentum", ("learning_rate", "momentum", "use_locking", "name", "use_nesterov")),
    "RMSPropOptimizer": ("RMSProp", ("learning_rate", "decay", "momentum", "epsilon", "use_locking", "centered",
                                     "name")),
}
#: TF1 arguments without a default (leaving one out is a TypeError in TF)
TF_REQUIRED = {"GradientDescentOptimizer": ("learning_rate",), "MomentumOptimizer": ("learning_rate", "momentum"),
               "RMSPropOptimizer": ("learning_rate",)}
#: TF1 argument -> minirnn argument, where the names differ
TF_RENAMED = {"use_nesterov": "nesterov"}
#: TF1 arguments minirnn has no counterpart for, but whose TF default is what minirnn computes anyway
TF_DEFAULT_ONLY = {"use_locking": "False", "centered": "False", "use_own_namescope_for_non_slot_vars": "False"}

IMPORT_TASK = re.compile(r"^(\s*)from\s+psychrnn\.tasks\.task\s+import\s+(.+)$")
IMPORT_TASKS = re.compile(r"^(\s*)from\s+psychrnn\.tasks\.\w+\s+import\s+(.+)$")
IMPORT_BACKEND = re.compile(r"^(\s*)from\s+psychrnn\.backend(?:\.\w+)*\s+import\s+(.+)$")
TF_FUNCTION = re.compile(r"\btf\.(?:nn\.|math\.)?(" + "|".join(TF_FUNCTIONS) + r")\b(?!\s*\()")
TF_OPTIMIZER = re.compile(r"\btf\.(?:compat\.v1\.)?train\.(" + "|".join(TF_OPTIMIZERS) + r")\s*\(")
TF_IMPORT = re.compile(r"^(\s*)import\s+tensorflow(\s+as\s+tf)?\s*(#.*)?$")
TF_ONLY_LINE = re.compile(
    r"^\s*(import\s+tensorflow(\s+as\s+tf)?"
    r"|tf\.(compat\.v[12]\.)?random\.set_seed\(.*\)"
    r"|tf\.compat\.v1\.set_random_seed\(.*\)"
    r"|tf\.compat\.v1\.disable_eager_execution\(\)"
    r"|tf\.compat\.v1\.logging\.set_verbosity\(.*\)"
    r"|tf\.compat\.v1\.reset_default_graph\(\))\s*(#.*)?$")
MAGIC_LINE = re.compile(r"^\s*%matplotlib\b.*$")
SETUP_CELL = re.compile(r"google\.colab|THIS CELL SETS STUFF UP FOR DEMO")
UNPORTED = re.compile(r"\btf\.|\btensorflow\b|\bpsychrnn\b")


def _names(imported: str) -> list[str]:
    return [n.strip() for n in imported.strip().strip("()").split(",") if n.strip()]


def _end_of_call(line: str, open_paren: int) -> int:
    """Index just after the parenthesis that closes the one at ``open_paren`` (or -1)."""
    depth = 0
    for i in range(open_paren, len(line)):
        depth += {"(": 1, ")": -1}.get(line[i], 0)
        if depth == 0:
            return i + 1
    return -1


def _port_backend_import(indent: str, imported: str):
    """``from psychrnn.backend.X import ...`` -> ``(line or None, notes)``: one minirnn import for
    every name (renamed where minirnn's name differs, keeping PsychRNN's name with ``as``)."""
    names = [n.split(" as ") for n in _names(imported)]
    if any(len(n) > 2 for n in names):
        return None, []
    names = [(n[0].strip(), n[1].strip() if len(n) == 2 else None) for n in names]
    notes = [f"{n}: {UNPORTABLE[n]}" for n, _ in names if n in UNPORTABLE]
    notes += [f"{n}: psychrnn.backend has no {n!r} that minirnn knows" for n, _ in names
              if n not in UNPORTABLE and n not in BACKEND_NAMES]
    if notes:
        return None, notes
    modules = {BACKEND_NAMES[n][0] for n, _ in names}
    module = modules.pop() if len(modules) == 1 else None
    if module is None and all(n in SIMULATE_NAMES for n, _ in names):
        module = "minirnn.simulate"  # e.g. BasicSimulator with relu: both live there
    if module is None:
        where = sorted({BACKEND_NAMES[n][0] for n, _ in names})
        return None, [f"the names come from different minirnn modules ({where}); import them on separate lines"]
    parts = []
    for name, alias in names:
        target = BACKEND_NAMES[name][1]
        shown = alias or name
        parts.append(target if target == shown else f"{target} as {shown}")
    return f"{indent}from {module} import {', '.join(parts)}", []


def _port_optimizer(tf_name: str, call: str):
    """``tf...train.<tf_name>(...)`` source -> ``(minirnn call or None, notes)``.

    Every argument keeps its value under minirnn's name (positional ones by TF1's order); an
    argument minirnn has no counterpart for leaves the call unported (never dropped silently)."""
    cls, order = TF_OPTIMIZERS[tf_name]
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError:
        return None, [f"{tf_name}(...) could not be parsed"]
    src = call.strip()
    if (not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args)
            or any(k.arg is None for k in node.keywords)):
        return None, [f"{tf_name} with *args or **kwargs: its arguments cannot be read off the line"]
    if len(node.args) > len(order):
        return None, [f"{tf_name} takes at most {len(order)} positional arguments"]
    given = {order[i]: ast.get_source_segment(src, a) for i, a in enumerate(node.args)}
    for k in node.keywords:
        given[k.arg] = ast.get_source_segment(src, k.value)
    notes = []
    for arg, value in given.items():
        if arg not in order:
            notes.append(f"{tf_name} has no argument {arg!r}")
        elif arg in TF_DEFAULT_ONLY:
            if value != TF_DEFAULT_ONLY[arg]:
                notes.append(f"{tf_name}({arg}={value}): minirnn's {cls} has no {arg!r} "
                             f"(it computes {arg}={TF_DEFAULT_ONLY[arg]} only)")
        elif arg == "name":
            notes.append(f"{tf_name}(name={value}): minirnn's {cls} has no name (a TensorFlow graph label)")
    missing = [a for a in TF_REQUIRED.get(tf_name, ()) if a not in given]
    if missing:
        notes.append(f"{tf_name} without {missing} (a TypeError in TensorFlow too)")
    if notes:
        return None, notes
    args = [f"{TF_RENAMED.get(a, a)}={given[a]}" for a in order if a in given and a not in TF_DEFAULT_ONLY]
    return f"{cls}({', '.join(args)})", []


def _port_line(line: str):
    """One line -> ``(ported line, minirnn optimizer classes it uses, notes on what was not ported)``."""
    m = IMPORT_TASK.match(line)
    if m:
        return f"{m.group(1)}from minirnn import {m.group(2).strip()}", set(), []
    m = IMPORT_TASKS.match(line)
    if m:
        return f"{m.group(1)}from minirnn.tasks import {m.group(2).strip()}", set(), []
    m = IMPORT_BACKEND.match(line)
    if m:
        imported, hash_, comment = m.group(2).partition("#")
        ported, notes = _port_backend_import(m.group(1), imported)
        if ported is None:
            return line, set(), notes
        return (f"{ported}  {hash_}{comment}" if hash_ else ported), set(), []
    if TF_ONLY_LINE.match(line) or MAGIC_LINE.match(line):
        indent = line[:len(line) - len(line.lstrip())]
        return f"{indent}# [port] removed: {line.strip()}", set(), []
    line = TF_FUNCTION.sub(lambda mm: f'"{TF_FUNCTIONS[mm.group(1)]}"', line)
    used, notes, pos = set(), [], 0
    while True:
        m = TF_OPTIMIZER.search(line, pos)
        if not m:
            break
        end = _end_of_call(line, m.end() - 1)
        if end < 0:  # the call goes on past this line
            notes.append(f"{m.group(1)}(...) spans several lines; write it on one line to port it")
            break
        ported, why = _port_optimizer(m.group(1), line[m.start():end])
        if ported is None:
            notes += why
            pos = end
            continue
        used.add(TF_OPTIMIZERS[m.group(1)][0])
        line = line[:m.start()] + ported + line[end:]
        pos = m.start() + len(ported)
    return line, used, notes


def port_line(line: str) -> str:
    """One line of PsychRNN code -> minirnn (unchanged when nothing applies).

    A ported TensorFlow optimizer names a minirnn optimizer class (``Adam(learning_rate=0.01)``):
    :func:`port_cells` adds its import, ``from minirnn.nn.optimizers import Adam``."""
    return _port_line(line)[0]


def why_unported(line: str) -> str:
    """Why a line that still names TensorFlow / psychrnn could not be ported."""
    notes = _port_line(line)[2]
    return "; ".join(notes) if notes else "TensorFlow / psychrnn code with no minirnn name to rename it to"


def optimizer_import(classes) -> str:
    return f"from minirnn.nn.optimizers import {', '.join(sorted(classes))}"


# ---- hand fixes for two of PsychRNN's documentation notebooks -------------------------------------

NEW_MODEL_CELL = '''\
# [port] hand fix: PsychRNN's TensorFlow class (variables, tf.matmul, forward_pass) replaced by the
# same model for minirnn: a feed-forward input layer v = f(u W_in_first^T) in front of Basic's
# recurrent network. minirnn's worked example InputLayerRNN has that layer (with a bias b_ff, here
# frozen at zero as in PsychRNN's version) and its hand-written backward pass; the class below keeps
# PsychRNN's parameter names. tutorials/08_new_model.py writes such a model from scratch.
from minirnn.models.examples import InputLayerRNN


class Basic_with_Feedforward(InputLayerRNN):
    """ The basic recurrent neural network model, with a feedforward input layer.

    Args:
       params (dict): See :class:`minirnn.Basic` for details.
            Additional Dictionary Keys:
                N_feedforward_out (int, optional): Number of outputs from the feedforward input layer. Default: 32
                W_in_first_train (bool, optional): True if feedforward weights, W_in_first, are trainable. Default: True
    """

    def __init__(self, params):
        params = dict(params)
        self.N_feedforward_out = params.pop('N_feedforward_out', 32)
        self.W_in_first_train = params.pop('W_in_first_train', True)
        params['N_ff'] = self.N_feedforward_out
        params['W_ff_train'] = self.W_in_first_train
        params['b_ff_train'] = False  # PsychRNN's layer has no bias
        super(Basic_with_Feedforward, self).__init__(params)
'''

#: file name -> list of (old, new, why): exact replacements of a whole line or a whole cell
KNOWN_FIXES = {
    "NewTask": [
        ("        super(SimplePDM, self).__init__(2, 2, dt, tau, T, N_batch)",
         "        super(SimplePD, self).__init__(2, 2, dt, tau, T, N_batch)",
         "PsychRNN bug: the class is SimplePD; SimplePDM is undefined (NameError on PsychRNN too)"),
        ("plt.plot(model_output[0][0,:,:])",
         "plt.plot(model_output[0,:,:])",
         "PsychRNN bug: model_output[0] is 2-D, so [0,:,:] raises IndexError on PsychRNN too"),
    ],
    "NewModel": [
        ("<cell: class Basic_with_Feedforward(RNN)>", NEW_MODEL_CELL,
         "TensorFlow model code cannot be ported by renaming; replaced by the minirnn model"),
    ],
}


# ---- notebook reading and percent-format writing ----------------------------------------------------

def read_cells(path: pathlib.Path) -> list[dict]:
    """``[{"cell_type", "source", "metadata"}]`` of a .ipynb, or one code cell for a .py script."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return [{"cell_type": c["cell_type"], "metadata": c.get("metadata", {}),
                 "source": "".join(c["source"]) if isinstance(c["source"], list) else c["source"]}
                for c in nb["cells"]]
    return [{"cell_type": "code", "metadata": {}, "source": path.read_text(encoding="utf-8")}]


def _is_setup_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and bool(SETUP_CELL.search(cell["source"]))


def port_cells(cells: list[dict], name: str):
    """Port every code cell; returns ``(cells, changes, hand_fixes, unported)``.

    When the ported code names minirnn optimizer classes, their import replaces the line
    ``import tensorflow as tf`` (whose scope is the one the optimizer calls had); with no such line
    left (say, it sat in the dropped set-up cell) it is added as the first line of the first cell.
    """
    kept = [c for c in cells if not _is_setup_cell(c)]
    needed = set()
    for cell in kept:
        if cell["cell_type"] == "code":
            for line in cell["source"].split("\n"):
                needed |= _port_line(line)[1]
    opt_import = optimizer_import(needed) if needed else None

    out, changes, fixes, unported = [], {}, [], []
    known = KNOWN_FIXES.get(name, [])
    for cell in cells:
        if _is_setup_cell(cell):
            changes.setdefault(("Colab / TensorFlow set-up cell", "dropped"), 0)
            changes[("Colab / TensorFlow set-up cell", "dropped")] += 1
            continue
        if cell["cell_type"] != "code":
            out.append(cell)
            continue
        source = cell["source"]
        for old, new, why in known:
            if old.startswith("<cell: ") and old[7:-1] in source:
                source = new.rstrip("\n")
                fixes.append(why)
        lines = []
        for line in source.split("\n"):
            for old, new, why in known:
                if line == old:
                    line = new
                    fixes.append(f"`{old.strip()}` -> `{new.strip()}` ({why})")
            m = TF_IMPORT.match(line)
            if opt_import and m:
                ported = f"{m.group(1)}{opt_import}  # [port] replaces: {line.strip()}"
            else:
                ported = port_line(line)
            if ported != line:
                key = (line.strip(), ported.strip())
                changes[key] = changes.get(key, 0) + 1
            if UNPORTED.search(ported.split("#")[0]) and "[port]" not in ported:
                unported.append(ported.strip())
            lines.append(ported)
        out.append(dict(cell, source="\n".join(lines)))
    if opt_import and not any(TF_IMPORT.match(line) for c in kept if c["cell_type"] == "code"
                              for line in c["source"].split("\n")):
        first = next(i for i, c in enumerate(out) if c["cell_type"] == "code")
        added = f"{opt_import}  # [port] added: the minirnn optimizers that replace TensorFlow's"
        out[first] = dict(out[first], source=added + "\n" + out[first]["source"])
        changes[("(no line)", added)] = 1
    return out, changes, fixes, unported


HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


def _comment(text: str) -> str:
    return "\n".join("#" if not line.strip() else f"# {line}" for line in text.split("\n"))


#: a note added to a change whose new text names the key
EXPLAINED = {
    "PsychRNNLSTM": " (PsychRNN's LSTM cell, h' = o * sigmoid(c'); minirnn's `LSTM` defaults to the standard "
                    "tanh cell)",
    "minirnn.nn.optimizers import": " (for the TensorFlow optimizers below, ported with their arguments)",
}


def to_percent(cells: list[dict], source_name: str, changes: dict, fixes: list, unported: list) -> str:
    """The jupytext percent script: header, a markdown cell listing the changes, then the cells."""
    notes = [f"**Ported from PsychRNN's `{source_name}` by `port.py`** (minirnn; DESIGN.md §8: imports "
             "changed, nothing else). Changes:", ""]
    for (old, new), count in changes.items():
        times = f" ({count}x)" if count > 1 else ""
        if new == "dropped":
            notes.append(f"- {old}: dropped{times}")
        elif new.startswith("# [port] removed:"):
            notes.append(f"- `{old}`: commented out{times}")
        else:
            why = next((text for key, text in EXPLAINED.items() if key in new), "")
            notes.append(f"- `{old}` -> `{new}`{times}{why}")
    for why in fixes:
        notes.append(f"- hand fix: {why}")
    for line in unported:
        notes.append(f"- NOT PORTED (still TensorFlow / psychrnn): `{line}`: {why_unported(line)}")
    parts = [HEADER.rstrip("\n"), "# %% [markdown]\n" + _comment("\n".join(notes))]
    for cell in cells:
        src = cell["source"].strip("\n")
        if cell["cell_type"] == "markdown":
            parts.append("# %% [markdown]\n" + _comment(src))
        elif cell["cell_type"] == "code":
            parts.append("# %%\n" + src)
    return "\n\n".join(parts) + "\n"


def port_file(path, out_dir=None) -> tuple[pathlib.Path, list]:
    """Port ``path`` (.ipynb or .py) and write ``<out_dir>/<stem>.py``; returns (path, unported lines)."""
    path = pathlib.Path(path)
    cells, changes, fixes, unported = port_cells(read_cells(path), path.stem)
    text = to_percent(cells, path.name, changes, fixes, unported)
    out_dir = pathlib.Path(out_dir) if out_dir is not None else path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.py"
    if target.resolve() == path.resolve():
        raise SystemExit(f"port.py: refusing to overwrite the input {path}; give -o another folder.")
    target.write_text(text, encoding="utf-8")
    return target, unported


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="PsychRNN .ipynb notebooks or .py scripts")
    parser.add_argument("-o", "--out-dir", default=None, help="output folder (default: next to each input)")
    parser.add_argument("--allow-unported", action="store_true",
                        help="exit 0 even when some lines still use TensorFlow / psychrnn")
    args = parser.parse_args(argv)
    status = 0
    for name in args.inputs:
        target, unported = port_file(name, args.out_dir)
        print(f"{name} -> {target}")
        for line in unported:
            print(f"  not ported (TensorFlow / psychrnn code): {line}\n    why: {why_unported(line)}", file=sys.stderr)
        if unported and not args.allow_unported:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
