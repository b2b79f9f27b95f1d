"""Workbooks made from solutions: one source, two notebooks.

A solution workbook marks what the learner writes with nbgrader's lines::

    ### BEGIN SOLUTION
    ...the answer...
    ### END SOLUTION

The exercise is the same notebook with each marked region replaced by ``# YOUR CODE HERE``
(and a ``pass`` so the code still runs), and with every output cleared.
"""

from __future__ import annotations

import json
import re

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[ \t]*\n.*?^[ \t]*{re.escape(END)}[ \t]*(\n|$)", re.M | re.S)


def strip_solutions(source: str) -> str:
    """Replace each solution region in a cell's source with a placeholder at its indentation."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"a cell has {source.count(BEGIN)} '{BEGIN}' lines but {source.count(END)} '{END}' lines")
    return _REGION.sub(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}pass{m[2]}", source)


def exercise_from_solution(notebook_json: str) -> str:
    """The exercise notebook (as JSON text) made from a solution notebook's JSON text."""
    notebook = json.loads(notebook_json)
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = strip_solutions(source).splitlines(keepends=True)
        cell["outputs"] = []
        cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    notebook["metadata"].pop("widgets", None)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
