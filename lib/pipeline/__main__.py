"""`python -m lib.pipeline ...`: the command line of lib.pipeline.make. A step of the generated Makefile (it passes
`--executed PATH`) first waits while another run makes it, then runs from its card (lib.pipeline.runner): the
pipeline (torch, the plan) loads only where a step has no card of this tree, and a second `make report` on the
same runs/ costs little more than its waiting."""
import sys

from lib.pipeline import runner  # imports nothing heavy

# Every step's process imports papermill, whose notebook validation imports jsonschema, which compiles 39 lark
# grammars at import (rfc3987_syntax, 1.5 s of a step's ~10 s of start-up) for the 'iri' formats that no notebook
# schema uses. Marked missing, jsonschema leaves those two format checks out, as it does where the package is not
# installed (jupyter-events pulls it in for JupyterLab).
sys.modules.setdefault("rfc3987_syntax", None)

args = sys.argv[1:]
if "execute" in args and "--executed" in args:  # a step of the generated Makefile
    if runner.from_command_line(args):  # another run made it, or it ran from its card
        raise SystemExit(0)

if args[-1:] == ["watch"] and not runner.watched():  # nothing to show: done before torch and the plan load (≈ 3 s)
    raise SystemExit(0)

from lib.pipeline.make import main  # noqa: E402 (after the wait and the card, on purpose)

main()
