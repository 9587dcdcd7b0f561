"""``python -m minirnn.course release SRC DEST`` | ``python -m minirnn.course grade DIR [--csv F]``."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import MinirnnError
from .release import release
from .submissions import _serve, format_report, grade_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minirnn.course",
                                     description="Release student versions of the assignments; grade submissions.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("release", help="write student versions (solution blocks -> NotImplementedError)")
    r.add_argument("src", help="an instructor file or the folder tutorials/assignments")
    r.add_argument("dest", help="a file or a folder for the student versions")
    g = sub.add_parser("grade", help="run and grade every a<N>_*.py under a folder")
    g.add_argument("folder")
    g.add_argument("--csv", help="also write one row per student, file and exercise here")
    g.add_argument("--json", help="also write the full reports here")
    g.add_argument("--timeout", type=float, default=600,
                   help="seconds to run each file top to bottom (default 600); it is graded on what it "
                        "defined by then")
    g.add_argument("--exercise-timeout", type=float, default=None,
                   help="seconds to grade each exercise (default: --timeout, at most 60)")
    g.add_argument("--jobs", type=int, default=1, help="files graded at the same time (default 1)")
    g.add_argument("--full", action="store_true", help="run training cells at full size (no MINIRNN_FAST)")
    one = sub.add_parser("_grade_one")  # internal: the subprocess of grade_file
    one.add_argument("--report", required=True)  # JSON lines go there, never to stdout
    one.add_argument("--timeout", type=float, default=None)
    one.add_argument("--exercise-timeout", type=float, default=None)
    one.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "_grade_one":
        _serve(args.paths, args.report, timeout=args.timeout, exercise_timeout=args.exercise_timeout)
        sys.stdout.flush()
        os._exit(0)  # every report is written: do not wait for threads or atexit hooks a submission left
    try:
        if args.command == "release":
            for path in release(args.src, args.dest):
                print(f"wrote {path}")
            return 0
        reports = grade_folder(args.folder, timeout=args.timeout, fast=not args.full, csv_path=args.csv,
                               jobs=args.jobs, exercise_timeout=args.exercise_timeout)
    except MinirnnError as e:  # a missing folder, a release marker that does not pair: one line, no traceback
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(reports, f, indent=1)
    text = format_report(reports) if reports else f"no a<N>_*.py files under {args.folder}"
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"  # a report redirected on Windows is cp1252:
    print(text.encode(encoding, errors="replace").decode(encoding))  # '?' for a hint's ⊙, no crash
    return 0


if __name__ == "__main__":
    sys.exit(main())
