"""`python -m lib.pipeline ...`: the command line of lib.pipeline.make. A step that another run is making (the
Makefile passes `--executed PATH`) is waited for before the pipeline loads (torch, the plan), so a second
`make report` on the same runs/ costs little more than its waiting."""
import sys
from pathlib import Path

from lib.pipeline.locks import wait_for_another_run

# Every step's process imports papermill, whose notebook validation imports jsonschema, which compiles 39 lark
# grammars at import (rfc3987_syntax, 1.5 s of a step's ~10 s of start-up) for the 'iri' formats that no notebook
# schema uses. Marked missing, jsonschema leaves those two format checks out, as it does where the package is not
# installed (jupyter-events pulls it in for JupyterLab).
sys.modules.setdefault("rfc3987_syntax", None)

args = sys.argv[1:]
if "execute" in args and "--executed" in args:
    name, executed = args[args.index("execute") + 1], Path(args[args.index("--executed") + 1])
    if wait_for_another_run(name, executed):
        raise SystemExit(0)

from lib.pipeline.make import main  # noqa: E402 (after the wait, on purpose)

main()
