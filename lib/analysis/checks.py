"""AutoAttack from its authors' code, for reading (step `authors`, lib.core.autoattack.run): its own reliability checks,
which fired for which model, ε and seed, and what the follow-up took. What its stages found is read by
report.interpret_autoattack, as the composition's is."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.analysis.claims import final_attack
from lib.analysis.report import bullets
from lib.core.autoattack import FOLLOWUP, SQUARE_CHECK
from lib.core.protocol import FOLLOWUP_QUERIES, FOLLOWUP_RESTARTS


def interpret_checks(checks: pd.DataFrame, autoattack: pd.DataFrame) -> str:
    """What AutoAttack's own checks said, and what the follow-up took where Square's check fired."""
    if checks.empty:
        return bullets(["None of AutoAttack's own checks fired (randomness, probabilities for logits, zero gradients, "
                        "too many targets, Square beating the gradient stages): its accuracies stand."])
    lines = []
    for check, rows in checks.groupby("check", sort=False):
        where = "; ".join(f"{m} at ε={e:g} (seed {', '.join(str(s) for s in sorted(g.seed))})"
                          for (m, e), g in rows.groupby(["model", "eps"]))
        lines.append(f"{check}: {where}.")
    square = checks[checks.check == SQUARE_CHECK]
    if not square.empty:
        keyed = autoattack.set_index(["model", "seed", "eps", "attack"]).accuracy
        taken = [keyed[(r.model, r.seed, r.eps, "Square")] - keyed[(r.model, r.seed, r.eps, FOLLOWUP)]
                 for r in square.itertuples()]
        lines.append(f"Where Square's check fired, the follow-up its authors advise (Square again with "
                     f"{FOLLOWUP_QUERIES:,} queries and {FOLLOWUP_RESTARTS} restarts, on the images still robust) took "
                     f"{100 * max(taken):.1f} points more at most ({100 * np.mean(taken):.1f} on average); the "
                     f"accuracy AutoAttack reports is the one after it ('{FOLLOWUP}').")
    return bullets(lines)


def fired_table(checks: pd.DataFrame) -> pd.DataFrame:
    """The checks that fired, for reading: per model and ε (rows), per check (columns), the seeds where it fired."""
    fired = checks.assign(eps=checks.eps.map(lambda e: f"ε={e:g}"), seed=checks.seed.map(lambda s: f"seed {s}"))
    return fired.pivot_table(index=["model", "eps"], columns="check", values="seed", aggfunc=", ".join,
                             fill_value="—").rename_axis(columns=None)


def interpret_source(checks: pd.DataFrame, autoattack: pd.DataFrame) -> str:
    """Which AutoAttack the rows come from and, for its authors' code, what its own checks said."""
    if final_attack(autoattack) != FOLLOWUP:
        return bullets(["This AutoAttack is the composition of torchattacks' attacks at the standard settings, which "
                        "runs none of its authors' reliability checks; SET=\"authors_autoattack=1\" reads its authors' "
                        "code (pyautoattack) instead, with its checks and the follow-up they advise."])
    return interpret_checks(checks, autoattack)
