"""`python -m lib.pipeline ...`: the command line of lib.pipeline.make. A step that another run is making (the
Makefile passes `--executed PATH`) is waited for before the pipeline loads (torch, the plan), so a second
`make report` on the same runs/ costs little more than its waiting."""
import sys
from pathlib import Path

from lib.pipeline.locks import wait_for_another_run

args = sys.argv[1:]
if "execute" in args and "--executed" in args:
    name, executed = args[args.index("execute") + 1], Path(args[args.index("--executed") + 1])
    if wait_for_another_run(name, executed):
        raise SystemExit(0)

from lib.pipeline.make import main  # noqa: E402 (after the wait, on purpose)

main()
