"""The study's code in three layers, imports pointing one way only: `lib.core` (the kernel: data, model,
losses, attacks, training, centers) <- `lib.analysis` (tables, claims, report text, plots) <- `lib.pipeline`
(the study's configuration, its steps, the DAG, make and rendering)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: notebooks/, runs/, data/, reports/
