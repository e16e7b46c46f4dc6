"""The study as a pipeline: its configuration, its steps and their DAG of content-keyed products, make,
rendering and the explorer. Imports lib.core and lib.analysis."""
