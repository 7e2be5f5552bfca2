"""Read an assignment source (``autograder/authoring/assignments/NN_name.py``) into an nbgrader source notebook.

The source is a plain Python file in "percent" format, edited by people; the notebooks are built
from it. A line starting with ``# %%`` opens a cell; the rest of the line says what it is::

    # %% [markdown]                       text, each line written as "# text"
    # %% [code]                           ordinary code cell the student may edit
    # %% [locked] id=setup                read-only code (nbgrader restores it at grading)
    # %% [solution] id=hooks functions=solutions.hooks:record_activations,top_channels
    #                                     student code: the cell's own lines, then the named
    #                                     functions copied whole from solutions/*.py (their
    #                                     ``### BEGIN/END SOLUTION`` bodies become stubs)
    # %% [solution] id=fig_layers points=2   as above, manually graded (a figure, an analysis)
    # %% [tests] id=test_shapes points=2  autograded test cell; ``### BEGIN HIDDEN TESTS`` blocks
    #                                     are removed from the release
    # %% [answer] id=q_layers points=3    manually graded written answer; the text is the model
    #                                     answer (instructor-only), students see "YOUR ANSWER HERE"
    # RUBRIC: 2 points: names both ...    inside an [answer] or a manually graded [solution] cell:
    #                                     what earns the points (required; the points add up to the
    #                                     cell's). Written into the instructor notebook only, inside
    #                                     what nbgrader clears from the release (under the heading
    #                                     RUBRIC_HEADING), and into the course's grading guide.

Cell ids are deterministic (``id=`` or the cell's position), so the build is reproducible.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.authoring import stated_times

REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("markdown", "code", "locked", "solution", "tests", "answer")
HEADER = re.compile(r"^# %%\s*\[(?P<kind>\w+)\](?P<attributes>.*)$")
#: Heading of the rubric inside a manual cell of the instructor notebook (cleared from the release).
RUBRIC_TITLE = "Rubric (graders only)."
RUBRIC_HEADING = f"**{RUBRIC_TITLE}**"
RUBRIC_LINE = re.compile(r"^#\s*RUBRIC:\s*(?P<item>.*)$")
RUBRIC_ITEM = re.compile(r"^(?P<points>\d+(?:\.\d+)?) points?: \S")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class SourceError(ValueError):
    """The assignment source is malformed; the message gives file and line."""


@dataclass
class SourceCell:
    kind: str
    attributes: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)
    line_number: int = 0


def parse_cells(text: str, filename: str = "<source>") -> list[SourceCell]:
    """Split a percent-format source into cells; lines before the first header are ignored."""
    cells: list[SourceCell] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = HEADER.match(line)
        if match:
            kind = match["kind"]
            if kind not in KINDS:
                raise SourceError(f"{filename}:{number}: unknown cell kind [{kind}] (one of {KINDS})")
            attributes = {}
            for item in match["attributes"].split():
                key, equals, value = item.partition("=")
                if not equals:
                    raise SourceError(f"{filename}:{number}: attribute {item!r} is not key=value")
                attributes[key] = value
            cells.append(SourceCell(kind, attributes, [], number))
        elif cells:
            cells[-1].lines.append(line)
    return cells


def function_source(reference: str) -> str:
    """Source of the top-level functions/classes named by ``module.path:name1,name2`` (decorators included)."""
    module_name, _, names = reference.partition(":")
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise SourceError(f"cannot find module {module_name}")
    text = Path(spec.origin).read_text()
    lines = text.splitlines()
    definitions = {node.name: node for node in ast.parse(text).body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
    pieces = []
    for name in names.split(","):
        node = definitions.get(name)
        if node is None:
            raise SourceError(f"{module_name} defines no top-level function or class {name!r}")
        start = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
        end = node.end_lineno
        # ast ends a function at its last statement: keep the indented comments after it
        # (the closing "### END SOLUTION" marker).
        while end < len(lines) and lines[end].startswith((" ", "\t")) and lines[end].strip().startswith("#"):
            end += 1
        pieces.append("\n".join(lines[start - 1:end]))
    return "\n\n\n".join(pieces)


def _strip_comment_prefix(lines: list[str]) -> str:
    out = []
    for line in lines:
        if line.startswith("# "):
            out.append(line[2:])
        elif line.strip() == "#":
            out.append("")
        else:
            out.append(line)
    return "\n".join(out).strip("\n")


def _nbgrader_metadata(cell_id: str, *, solution: bool, grade: bool, locked: bool, points=None) -> dict:
    metadata = {"grade": grade, "grade_id": cell_id, "locked": locked, "schema_version": 3,
                "solution": solution, "task": False}
    if points is not None:
        metadata["points"] = points
    return metadata


def _points(cell: SourceCell, filename: str):
    if "points" not in cell.attributes:
        return None
    try:
        return float(cell.attributes["points"]) if "." in cell.attributes["points"] else int(cell.attributes["points"])
    except ValueError as error:
        raise SourceError(f"{filename}:{cell.line_number}: points must be a number") from error


def kit_settings() -> dict:
    """``[tool.xai_kit]`` of pyproject.toml: the student repository (``github_repository``) and the
    pinned ``ref`` (a tag per term) that the badges and the Colab set-up cell point to."""
    import tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["xai_kit"]


def header_cells(assignment: str, repository: str | None = None, ref: str | None = None) -> list:
    """The cells every notebook starts with: an "Open in Colab" badge and the Colab set-up cell.

    Both point at ``repository`` (``OWNER/NAME`` on GitHub) at ``ref`` (default: ``[tool.xai_kit]``).
    Neither is tracked by nbgrader (no grade id, not locked): they play no part in grading, so a
    notebook published for any repository or ref grades exactly like the kit's own release.
    """
    settings = kit_settings()
    repository = repository or settings["github_repository"]
    ref = ref or settings["ref"]
    url = f"https://colab.research.google.com/github/{repository}/blob/{ref}/notebooks/{assignment}.ipynb"
    badge = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})")
    badge["id"] = "colab-badge"
    template = (REPO_ROOT / "autograder" / "authoring" / "templates" / "setup_cell.py").read_text()
    setup = nbformat.v4.new_code_cell(
        template.replace("{pip_source}", f"git+https://github.com/{repository}.git@{ref}").strip("\n"))
    setup["id"] = "colab_setup"
    return [badge, setup]


def take_rubric(cell: SourceCell, filename: str, points) -> list[str]:
    """Remove the ``# RUBRIC:`` lines from a manual cell and return their items, checked: each
    reads ``N point(s): what earns them`` and the points add up to the cell's."""
    items, kept = [], []
    for line in cell.lines:
        match = RUBRIC_LINE.match(line)
        if match:
            items.append(match["item"].strip())
        elif items and line.startswith("#   ") and not line.strip("# "):
            continue
        elif items and line.startswith("#   "):
            items[-1] += " " + line[1:].strip()  # a rubric item continued on the next line
        else:
            kept.append(line)
    where = f"{filename}:{cell.line_number}"
    if not items:
        raise SourceError(f"{where}: a manually graded cell needs its rubric (# RUBRIC: N points: what earns them)")
    total = 0.0
    for item in items:
        match = RUBRIC_ITEM.match(item)
        if not match:
            raise SourceError(f"{where}: rubric item {item!r} must read 'N point(s): what earns them'")
        total += float(match["points"])
    if abs(total - float(points)) > 1e-9:
        raise SourceError(f"{where}: the rubric gives {total:g} points, the cell has {points}")
    cell.lines = kept
    return items


def _rubric_markdown(items: list[str]) -> str:
    return RUBRIC_HEADING + "\n" + "\n".join(f"- {item}" for item in items)


def _with_rubric_in_solution(code: str, items: list[str]) -> str:
    """The rubric as comments right after ``### BEGIN SOLUTION`` (nbgrader clears that block)."""
    lines = code.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "### BEGIN SOLUTION")
    indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
    comments = [f"{indent}# {RUBRIC_TITLE}"] + [f"{indent}# - {item}" for item in items]
    return "\n".join(lines[:at + 1] + comments + lines[at + 1:])


def split_rubric(text: str) -> tuple[str, list[str]]:
    """``(model answer, rubric items)`` of a manual cell's text in the instructor notebook (the
    inverse of what :func:`build_notebook` writes: the heading, then one ``- item`` per line)."""
    answer, rubric = [], []
    in_rubric = False
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped.strip("*").strip() == RUBRIC_TITLE:
            in_rubric = True
            continue
        if in_rubric and stripped.startswith("- "):
            rubric.append(stripped[2:])
        elif in_rubric and not stripped:
            continue
        else:
            in_rubric = False
            answer.append(line)
    return "\n".join(answer).strip("\n"), rubric


def build_notebook(source_path: Path, repository: str | None = None, ref: str | None = None) -> nbformat.NotebookNode:
    """The nbgrader *source* notebook (solutions and hidden tests included) for one assignment."""
    source_path = Path(source_path)
    filename = source_path.name
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": dict(KERNELSPEC),
                         "language_info": {"name": "python"}}
    seen_ids = set()
    text = stated_times.fill(source_path.read_text(), source_path.stem)  # run times from the benchmark
    for position, cell in enumerate(parse_cells(text, filename)):
        cell_id = cell.attributes.get("id", f"{source_path.stem}-{position:02d}")
        if cell_id in seen_ids:
            raise SourceError(f"{filename}:{cell.line_number}: duplicate cell id {cell_id!r}")
        seen_ids.add(cell_id)
        points = _points(cell, filename)
        if cell.kind in ("tests", "answer") and points is None:
            raise SourceError(f"{filename}:{cell.line_number}: [{cell.kind}] cells need points=")
        manual = cell.kind == "answer" or (cell.kind == "solution" and points is not None)
        rubric = take_rubric(cell, filename, points) if manual else []
        code = "\n".join(cell.lines).strip("\n")
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(_strip_comment_prefix(cell.lines))
        elif cell.kind == "answer":
            new = nbformat.v4.new_markdown_cell(_strip_comment_prefix(cell.lines) + "\n\n" + _rubric_markdown(rubric))
            new.metadata["nbgrader"] = _nbgrader_metadata(cell_id, solution=True, grade=True, locked=False,
                                                           points=points)
        elif cell.kind == "solution":
            if "functions" in cell.attributes:
                copied = function_source(cell.attributes["functions"])
                code = f"{code}\n\n\n{copied}" if code else copied
            if "### BEGIN SOLUTION" not in code:
                raise SourceError(f"{filename}:{cell.line_number}: a [solution] cell needs ### BEGIN SOLUTION")
            if rubric:
                code = _with_rubric_in_solution(code, rubric)
            new = nbformat.v4.new_code_cell(code)
            new.metadata["nbgrader"] = _nbgrader_metadata(cell_id, solution=True, grade=points is not None,
                                                           locked=False, points=points)
        elif cell.kind == "tests":
            new = nbformat.v4.new_code_cell(code)
            new.metadata["nbgrader"] = _nbgrader_metadata(cell_id, solution=False, grade=True, locked=True,
                                                           points=points)
        elif cell.kind == "locked":
            new = nbformat.v4.new_code_cell(code)
            new.metadata["nbgrader"] = _nbgrader_metadata(cell_id, solution=False, grade=False, locked=True)
        else:
            new = nbformat.v4.new_code_cell(code)
        new["id"] = cell_id
        notebook.cells.append(new)
    # The badge and the set-up cell go right after the title cell.
    notebook.cells[1:1] = header_cells(source_path.stem, repository, ref)
    return notebook
