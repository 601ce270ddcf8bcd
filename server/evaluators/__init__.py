"""Scoring engine: one evaluator per challenge kind, strict readers, every problem at once.

Pure functions, no database and no event loop: the server runs them in worker processes.
"""

from server.evaluators.evaluate import evaluate, load_truth
from server.evaluators.options import SCORER_VERSION, ScoringOptions
from server.evaluators.result import WARNING_CODES, Problem, Result
from server.evaluators.table import Table, TableRow, parse_number, parse_table, read_table
from server.evaluators.truth import TruthError

__all__ = [
    "SCORER_VERSION",
    "WARNING_CODES",
    "Problem",
    "Result",
    "ScoringOptions",
    "Table",
    "TableRow",
    "TruthError",
    "evaluate",
    "load_truth",
    "parse_number",
    "parse_table",
    "read_table",
]
