"""Write the student versions of the assignments: ``python release.py [DEST]``.

``DEST`` defaults to ``./student``, a folder ``student`` in the current working directory (not
next to this file, so that running it from the course repository never writes into it). The same as
``python -m minirnn.course release tutorials/assignments DEST``: every ``### BEGIN SOLUTION`` /
``### END SOLUTION`` block becomes ``raise NotImplementedError("Student exercise: <hint>")``.
"""
import sys
from pathlib import Path

from minirnn.course import release

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd() / "student"
    for path in release(here, dest):
        print(f"wrote {path}")
