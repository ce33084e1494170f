"""`codellama-lsp eval`: how good the completions that reach the user are, measured on a repository's code.

``tasks`` cuts holes in real files, ``runner`` completes them through the editors' pipeline, ``metrics``
scores the answers, ``command`` ties them to the command line (a JSON file and a markdown table).
"""

from lsp.evaluation.command import add_eval_arguments, evaluate
from lsp.evaluation.metrics import Outcome, Summary, edit_similarity, markdown_table, percentile, summaries
from lsp.evaluation.tasks import Task, make_tasks

__all__ = [
    "Outcome",
    "Summary",
    "Task",
    "add_eval_arguments",
    "edit_similarity",
    "evaluate",
    "make_tasks",
    "markdown_table",
    "percentile",
    "summaries",
]
