"""The analysis of products: tidy tables, the claims and their verdicts, report text, figures. Imports lib.core
only."""
