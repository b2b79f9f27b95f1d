"""The ``ldkkit`` command line: ``ldkkit grade SUBMISSIONS... [--out DIR]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ldkkit", description="Tools for the LDK events workshop.")
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade learners' workbooks (a workbook, or a folder per learner)")
    grade.add_argument("submissions", nargs="+", help="workbooks, or folders of one learner's workbooks")
    grade.add_argument("--out", default="grades", help="where to write grades.csv and report.html (default: grades)")
    grade.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per workbook (default: 120)")
    grade.add_argument("--memory", type=int, default=2048, help="MiB of address space per learner process "
                       "(default: 2048)")
    grade.add_argument("--jobs", type=int, default=None, help="workbooks graded at once (default: one per core)")
    args = parser.parse_args(argv)

    from .grading import grade as run_grade
    from .grading import summary
    from .sandbox.jail import Limits

    table = run_grade(args.submissions, args.out, timeout_s=args.timeout, jobs=args.jobs,
                      limits=Limits(memory_mb=args.memory))
    rates, hints = summary(table)
    print(rates.to_string())
    if len(hints):
        print("\nMost common failing hints:")
        print(hints.head(5).to_string(index=False))
    print(f"\nWrote {args.out}/grades.csv and {args.out}/report.html ({len(table)} workbooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
