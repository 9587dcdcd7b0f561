"""A teaching kit: assignments that rebuild minirnn's engine, their release tool and autograder.

* ``tutorials/assignments/a*.py`` — instructor versions (jupytext percent notebooks) with the
  solutions between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers.
* :mod:`minirnn.course.release` — writes the student versions (``python -m minirnn.course release``).
* :mod:`minirnn.course.grade` — graders students call themselves: ``grade.euler_step(euler_step)``.
* :mod:`minirnn.course.grader` — the machinery, and ``grade_file``/``grade_folder`` for a course
  (``python -m minirnn.course grade SUBMISSIONS_DIR``).
"""
from . import grade
from .grader import Result
from .release import release, release_text
from .submissions import grade_file, grade_files, grade_folder

FAST = "MINIRNN_FAST"  # set to 1: assignments train with small settings (tests, grading)


def rel_error(a, b):
    """CS231n's relative error ``max |a - b| / max(1e-8, |a| + |b|)`` (entrywise, then the max)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


__all__ = ["grade", "Result", "release", "release_text", "grade_file", "grade_files", "grade_folder", "rel_error", "FAST"]
