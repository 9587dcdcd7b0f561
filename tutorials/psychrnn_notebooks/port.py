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
* ``from psychrnn.backend.<...> import B``         -> ``from minirnn import B`` (Basic, LSTM, RNN,
  Curriculum, default_metric, BasicSimulator, LSTMSimulator, the initializers)
* ``tf.nn.relu`` / ``tf.nn.tanh`` / ``tf.nn.sigmoid`` / ``tf.nn.softplus`` -> ``"relu"``, ...
* a TensorFlow optimizer object (``tf.compat.v1.train.AdamOptimizer(...)``) -> ``"adam"``
  (``"sgd"``, ``"momentum"``, ``"rmsprop"`` for the others; the learning rate is
  ``train_params["learning_rate"]``, as PsychRNN's default optimizer reads it)
* TensorFlow-only statements (``import tensorflow as tf``, ``tf...set_seed(...)``,
  ``tf...disable_eager_execution()``, ``tf...logging.set_verbosity(...)``) and ``%matplotlib
  inline`` become comments (``# [port] removed: ...``), so line numbers keep matching
* the Colab / TensorFlow set-up cell of PsychRNN's documentation notebooks is dropped

A markdown cell at the top lists every change made. Anything still naming ``tf.`` or ``psychrnn``
afterwards cannot be ported by renaming (TensorFlow model code, say): it is reported on stderr
and in that list, and the script exits with status 1 unless ``--allow-unported``.

``KNOWN_FIXES`` holds the only hand edits, for two of PsychRNN's own notebooks: two bugs in
NewTask.ipynb (it does not run on PsychRNN either) and NewModel.ipynb's TensorFlow model class,
which is TensorFlow code by nature and is replaced by the same model written for minirnn.
They are applied only to files of those names and listed in the header as hand fixes.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

# ---- the substitutions ------------------------------------------------------------------------

#: psychrnn.backend names importable from minirnn's top level
TOP_LEVEL = {"Basic", "LSTM", "RNN", "Curriculum", "default_metric", "BasicSimulator", "LSTMSimulator",
             "WeightInitializer", "GaussianSpectralRadius", "AlphaIdentity", "Task"}

TF_FUNCTIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softplus": "softplus"}
TF_OPTIMIZERS = {"AdamOptimizer": "adam", "GradientDescentOptimizer": "sgd", "MomentumOptimizer": "momentum",
                 "RMSPropOptimizer": "rmsprop"}

IMPORT_TASK = re.compile(r"^(\s*)from\s+psychrnn\.tasks\.task\s+import\s+(.+)$")
IMPORT_TASKS = re.compile(r"^(\s*)from\s+psychrnn\.tasks\.\w+\s+import\s+(.+)$")
IMPORT_BACKEND = re.compile(r"^(\s*)from\s+psychrnn\.backend(?:\.\w+)*\s+import\s+(.+)$")
TF_FUNCTION = re.compile(r"\btf\.(?:nn\.|math\.)?(" + "|".join(TF_FUNCTIONS) + r")\b(?!\s*\()")
TF_OPTIMIZER = re.compile(r"\btf\.(?:compat\.v1\.)?train\.(" + "|".join(TF_OPTIMIZERS) + r")\s*\(")
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


def port_line(line: str) -> str:
    """One line of PsychRNN code -> minirnn (unchanged when nothing applies)."""
    m = IMPORT_TASK.match(line)
    if m:
        return f"{m.group(1)}from minirnn import {m.group(2).strip()}"
    m = IMPORT_TASKS.match(line)
    if m:
        return f"{m.group(1)}from minirnn.tasks import {m.group(2).strip()}"
    m = IMPORT_BACKEND.match(line)
    if m and all(n.split(" as ")[0].strip() in TOP_LEVEL for n in _names(m.group(2))):
        return f"{m.group(1)}from minirnn import {m.group(2).strip()}"
    if TF_ONLY_LINE.match(line) or MAGIC_LINE.match(line):
        indent = line[:len(line) - len(line.lstrip())]
        return f"{indent}# [port] removed: {line.strip()}"
    line = TF_FUNCTION.sub(lambda mm: f'"{TF_FUNCTIONS[mm.group(1)]}"', line)
    while True:
        m = TF_OPTIMIZER.search(line)
        end = _end_of_call(line, m.end() - 1) if m else -1
        if end < 0:
            break
        line = line[:m.start()] + f'"{TF_OPTIMIZERS[m.group(1)]}"' + line[end:]
    return line


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
    """Port every code cell; returns ``(cells, changes, hand_fixes, unported)``."""
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
            ported = port_line(line)
            if ported != line:
                key = (line.strip(), ported.strip())
                changes[key] = changes.get(key, 0) + 1
            if UNPORTED.search(ported.split("#")[0]) and "[port]" not in ported:
                unported.append(ported.strip())
            lines.append(ported)
        out.append(dict(cell, source="\n".join(lines)))
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
            notes.append(f"- `{old}` -> `{new}`{times}")
    for why in fixes:
        notes.append(f"- hand fix: {why}")
    for line in unported:
        notes.append(f"- NOT PORTED (still TensorFlow / psychrnn): `{line}`")
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
            print(f"  not ported (TensorFlow / psychrnn code): {line}", file=sys.stderr)
        if unported and not args.allow_unported:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
