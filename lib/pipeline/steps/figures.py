"""Step `figures` (08_figures): the report notebook itself is the product; besides its figures, it writes the
per-model tables of the reproduction's models (accuracy and training history) that reports/results/ exports."""
from __future__ import annotations

import pandas as pd

from lib.analysis import tables
from lib.pipeline import dag
from lib.pipeline.config import Study


def model_tables(s: Study, checkpoints: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy, history) of the given checkpoints, saved as models.csv and history.csv in the step's folder."""
    task = dag.task(s, "figures")
    accuracy = tables.accuracy_table(list(checkpoints.values()))
    history = tables.history_table(list(checkpoints.values()))
    tables.save_csv(accuracy, task.file("models.csv"))
    tables.save_csv(history, task.file("history.csv"))
    return accuracy, history
