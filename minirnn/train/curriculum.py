"""Curriculum learning: train on a sequence of tasks, moving on when a metric passes a threshold.

PsychRNN's ``Curriculum`` semantics (REFERENCE.md "Curriculum"), with the stage rule written as a
small pure function (STYLE.md P13) and the history kept on the object::

    every metric_epoch updates:                      (the trainer calls metric_test on a batch
                                                      from the stage task's check stream: the
                                                      training batches stay as they were)
        advance, value = metric(curriculum_params, x, y, mask, output, epoch, losses, verbosity)
        metric_values.append([value, stage])
        stage, finished = next_stage(stage, advance, n_stages)
        stop_training = finished                     (after the last stage's threshold)

Use::

    from minirnn import Basic, Curriculum
    from minirnn.tasks import PerceptualDiscrimination

    tasks = [PerceptualDiscrimination(dt=10, tau=100, T=2000, N_batch=64, coherence=c)
             for c in (0.7, 0.5, 0.3, 0.1)]
    curriculum = Curriculum(tasks, thresholds=[0.9] * 4, output_file="runs/curriculum.npy")
    model = Basic(dict(tasks[0].get_task_params(), N_rec=50))
    model.train_curric({"curriculum": curriculum, "training_iters": 200000})
    model.history["stages"]      # [{"update": ..., "stage": ..., "metric": ...}, ...]

The output file
---------------
Written atomically after every metric test (PsychRNN wrote it only after the last stage, so an
interrupted run left nothing); its folder is created. The format follows the extension:

* ``.json``: ``{"metric_values": [[value, stage], ...], "history": [{"epoch", "stage",
  "metric", "advanced"}, ...], "stage": ..., "stop_training": ...}`` — readable by anything.
* anything else: PsychRNN's file, ``np.save(output_file, metric_values)`` (``.npy`` appended when
  missing): shape ``(n_tests, 2)``, columns ``[metric value, stage]``, so PsychRNN's
  ``values, stages = np.load(f).T`` works. The update of each test is in the ``.json`` form.
"""
from __future__ import annotations

import json
import numbers
import os

import numpy as np

from .._params import is_int
from ..errors import ParameterError, ParameterTypeError

__all__ = ["Curriculum", "default_metric", "next_stage"]


def default_metric(curriculum_params, input_data, correct_output, output_mask, output, epoch, losses,
                   verbosity):
    """PsychRNN's default curriculum metric: the current stage's accuracy against its threshold.

    Parameters
    ----------
    curriculum_params : dict
        The curriculum's attributes (``Curriculum.__dict__``): ``stage``, ``accuracies``,
        ``thresholds``, ...
    input_data : (B, T, N_in) array.  correct_output, output_mask, output : (B, T, N_out) arrays.
    epoch : int, the update count.  losses : list of recorded losses.  verbosity : bool.

    Returns
    -------
    advance : bool
        ``value >= thresholds[stage]``.
    value : float
        ``accuracies[stage](correct_output, output, output_mask)``.
    """
    stage = curriculum_params["stage"]
    accuracy = curriculum_params["accuracies"][stage]
    value = accuracy(correct_output, output, output_mask)
    if value is None:
        raise ParameterError(f"The accuracy function of curriculum stage {stage} returned None (a Task "
                             "without an accuracy_function?). Pass Curriculum(accuracies=[...]) with one "
                             "callable(correct_output, test_output, output_mask) -> float per task.")
    value = float(np.mean(value))
    if verbosity:
        from .trainer import say

        say(f"Accuracy: {value}")
    return bool(value >= curriculum_params["thresholds"][stage]), value


def next_stage(stage: int, advance: bool, n_stages: int) -> tuple[int, bool]:
    """The stage rule: ``(stage + 1 if advance else stage, finished)``; finished after the last."""
    # 1) stay until the metric says advance
    if not advance:
        return stage, False
    # 2) move on; passing the last stage's threshold ends training
    stage += 1
    return stage, stage >= n_stages


class Curriculum:
    """A sequence of tasks for ``model.train_curric`` (PsychRNN's ``Curriculum``).

    Parameters
    ----------
    tasks : list of Task
        The stages, in order; stage ``i`` trains on ``tasks[i]``.
    metric : callable, default :func:`default_metric`
        ``metric(curriculum_params, input_data, correct_output, output_mask, output, epoch, losses,
        verbosity) -> (advance, value)``; ``curriculum_params`` is this object's ``__dict__``.
    accuracies : list of callable, optional
        One ``accuracy(correct_output, test_output, output_mask) -> float`` per task; default each
        task's ``accuracy_function``.
    thresholds : list of float, optional
        One per task; default ``[0.9] * len(tasks)``.
    metric_epoch : int, default 10
        Test the metric every this many updates.
    output_file : str or PathLike, optional
        Where the metric history is written (see the module docstring for the format).

    Attributes
    ----------
    stage : int
        The current stage (``len(tasks)`` once finished).
    stop_training : bool
        True after the last stage's threshold is passed.
    metric_values : list of ``[value, stage]``
        Every metric test, as PsychRNN records it.
    history : list of dict
        Every metric test: ``{"epoch", "stage", "metric", "advanced"}`` (stage before the test).
    """

    def __init__(self, tasks, metric=default_metric, accuracies=None, thresholds=None, metric_epoch=10,
                 output_file=None):
        if isinstance(tasks, (str, bytes)) or not hasattr(tasks, "__len__") or len(tasks) == 0:
            raise ParameterError(f"The 'tasks' argument of Curriculum must be a non-empty list of Tasks. "
                                 f"Got {tasks!r} instead.")
        self.tasks = list(tasks)
        for i, task in enumerate(self.tasks):
            if not (hasattr(task, "generate_batch") or hasattr(task, "batch_generator")):
                raise ParameterTypeError(f"tasks[{i}] of Curriculum must be a Task (with generate_batch / "
                                         f"batch_generator). Got {type(task).__name__} instead.")
        n = len(self.tasks)
        if not callable(metric):
            raise ParameterTypeError(f"The 'metric' argument of Curriculum must be a callable "
                                     f"metric(curriculum_params, input_data, correct_output, output_mask, "
                                     f"output, epoch, losses, verbosity) -> (advance, value). Got {metric!r}.")
        self.metric = metric
        if accuracies is None:
            accuracies = [getattr(task, "accuracy_function", None) for task in self.tasks]
        self.accuracies = self._per_task_list("accuracies", accuracies, n)
        for i, acc in enumerate(self.accuracies):
            if not callable(acc):
                raise ParameterTypeError(f"accuracies[{i}] of Curriculum must be a callable(correct_output, "
                                         f"test_output, output_mask) -> float. Got {acc!r} instead.")
        thresholds = [0.9] * n if thresholds is None else thresholds
        self.thresholds = self._per_task_list("thresholds", thresholds, n)
        for i, th in enumerate(self.thresholds):
            if isinstance(th, (bool, np.bool_)) or not isinstance(th, numbers.Real) or not np.isfinite(th):
                raise ParameterError(f"thresholds[{i}] of Curriculum must be a finite number. Got {th!r} instead.")
        self.thresholds = [float(th) for th in self.thresholds]
        if not is_int(metric_epoch, 1):
            raise ParameterError(f"The 'metric_epoch' argument of Curriculum must be a positive int. "
                                 f"Got {metric_epoch!r} instead.")
        self.metric_epoch = int(metric_epoch)
        if output_file is not None and not isinstance(output_file, (str, os.PathLike)):
            raise ParameterTypeError(f"The 'output_file' argument of Curriculum must be a path or None. "
                                     f"Got {output_file!r} instead.")
        self.output_file = None if output_file is None else os.fspath(output_file)
        if self.output_file is not None:
            folder = os.path.dirname(os.path.abspath(self.output_file))
            os.makedirs(folder, exist_ok=True)  # PsychRNN creates the folder too
        self.reset()

    def reset(self) -> None:
        """Start again from stage 0 with no metric history (to train another model on the same stages)."""
        self.stop_training = False
        self.stage = 0
        self.metric_values = []
        self.history = []

    @staticmethod
    def _per_task_list(name, value, n):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise ParameterTypeError(f"The {name!r} argument of Curriculum must be a list with one entry per "
                                     f"task ({n}). Got {value!r} instead.")
        value = list(value)
        if len(value) != n:
            raise ParameterError(f"The {name!r} argument of Curriculum must have one entry per task: "
                                 f"{n} tasks but {len(value)} {name}.")
        return value

    # ---- the hook the trainer calls --------------------------------------------------------------
    def metric_test(self, input_data, correct_output, output_mask, test_output, epoch, losses, verbosity=False):
        """Test the metric on a batch; advance a stage when it passes. Returns True on advance.

        Parameters
        ----------
        input_data : (B, T, N_in).  correct_output, output_mask, test_output : (B, T, N_out).
        epoch : int, the update count.  losses : list of recorded losses.  verbosity : bool.
        """
        if self.stop_training:
            return False
        advance, value = self.metric(self.__dict__, input_data, correct_output, output_mask, test_output,
                                     epoch, losses, verbosity)
        value = float(np.mean(value))
        self.metric_values.append([value, self.stage])
        self.history.append({"epoch": int(epoch), "stage": int(self.stage), "metric": value,
                             "advanced": bool(advance)})
        self.stage, self.stop_training = next_stage(self.stage, bool(advance), len(self.tasks))
        if advance and verbosity:
            from .trainer import say

            say(f"Stage {self.stage}")
        if self.output_file is not None:
            self.save(self.output_file)
        return bool(advance)

    # ---- batches of the current stage ------------------------------------------------------------
    def current_task(self):
        """The task of the current stage (the last one once training has finished)."""
        return self.tasks[min(self.stage, len(self.tasks) - 1)]

    def batch_generator(self):
        """A generator of the current stage's task batches (PsychRNN master)."""
        return self.current_task().batch_generator()

    def get_generator_function(self):
        """The same as :meth:`batch_generator` (PsychRNN 1.0.0's name; kept without a warning)."""
        return self.batch_generator()

    # ---- the output file -------------------------------------------------------------------------
    def save(self, path):
        """Write the metric history to ``path`` atomically (format: see the module docstring).

        Returns the path written.
        """
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        if path.endswith(".json"):
            payload = json.dumps({"metric_values": self.metric_values, "history": self.history,
                                  "stage": self.stage, "stop_training": self.stop_training,
                                  "thresholds": self.thresholds, "metric_epoch": self.metric_epoch}, indent=1)
            data = payload.encode()
        else:
            if not path.endswith(".npy"):
                path += ".npy"
            table = np.array(self.metric_values, dtype=np.float64).reshape(-1, 2)
            data = None
        from ..io import atomic_open

        with atomic_open(path) as fh:
            if data is not None:
                fh.write(data)
            else:
                np.save(fh, table, allow_pickle=False)
        return path

    # ---- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The progress (JSON-serialisable): ``stage``, ``stop_training``, ``metric_values``, ``history``."""
        return {"stage": int(self.stage), "stop_training": bool(self.stop_training),
                "metric_values": [[float(v), int(s)] for v, s in self.metric_values],
                "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (``history`` optional)."""
        missing = [k for k in ("stage", "stop_training", "metric_values") if k not in state]
        if missing:
            raise ParameterError(f"A Curriculum state needs the keys 'stage', 'stop_training' and 'metric_values'; "
                                 f"missing {missing}.")
        stage = int(state["stage"])
        if not 0 <= stage <= len(self.tasks):
            raise ParameterError(f"A Curriculum state has stage {stage}, but this curriculum has "
                                 f"{len(self.tasks)} tasks.")
        self.stage, self.stop_training = stage, bool(state["stop_training"])
        self.metric_values = [[float(v), int(s)] for v, s in state["metric_values"]]
        self.history = [dict(h) for h in state.get("history", [])]

    def __repr__(self) -> str:
        return (f"Curriculum(n_tasks={len(self.tasks)}, stage={self.stage}, thresholds={self.thresholds}, "
                f"metric_epoch={self.metric_epoch}, stop_training={self.stop_training})")


def check_curriculum(curriculum, N_in: int, N_out: int, finished_ok: bool = False) -> None:
    """``curriculum`` is a :class:`Curriculum` that has not finished (unless ``finished_ok``) and whose
    tasks fit a model of ``N_in`` inputs and ``N_out`` outputs; else the error that names what is wrong."""
    from ..errors import ShapeError

    if not isinstance(curriculum, Curriculum):
        raise ParameterError(f"train_params['curriculum'] must be a minirnn Curriculum (Curriculum(tasks, ...)). "
                             f"Got {type(curriculum).__name__} instead.")
    if not finished_ok and (curriculum.stop_training or curriculum.stage >= len(curriculum.tasks)):
        raise ParameterError(f"The curriculum in train_params has already finished (stage {curriculum.stage} of "
                             f"{len(curriculum.tasks)}): it keeps its progress. Call curriculum.reset() to start "
                             "it again from stage 0, or make a new Curriculum.")
    for i, task in enumerate(curriculum.tasks):
        for size, wanted in (("N_in", N_in), ("N_out", N_out)):
            if getattr(task, size, None) is not None and int(getattr(task, size)) != int(wanted):
                raise ShapeError(f"Curriculum stage {i} ({type(task).__name__}) has {size}={getattr(task, size)} "
                                 f"but the model has {size}={wanted}.")
