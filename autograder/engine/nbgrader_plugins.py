"""nbgrader preprocessors of the course (configured in ``autograder/course/nbgrader_config.py``).

- :class:`ExecuteWithTrustedChecks` is nbgrader's ``Execute`` with the kit's cell limits (CPU
  time, a restarted kernel replayed: ``limited_execute``) and the hidden checks' server
  (``check_server``) running in this process, outside the kernel: it begins and ends each
  notebook on the server (a token per notebook, its connections closed at its end), tells the
  server which cell runs, and keeps the server's verdicts per cell in ``resources``. With
  ``check_kernel_name`` set (the grader sets it), the hidden lines run in a second kernel that has
  the student's functions and not the libraries they must not use (``check_kernel``).
- :class:`ScoreTestCells` decides each autograded test cell from those verdicts: the cell keeps
  its points only if it ran to the end without an error *and* every hidden check its source
  names passed on the trusted side while it ran. What the notebook printed counts for nothing:
  an ``execute_result`` (nbgrader's partial-credit rule would read it as a score, before it
  looks at an error after it) is turned into plain display output.
- :class:`LimitOutputCharacters` (after the grades are saved, so it changes no score) cuts any
  one output to a bounded size: nbgrader's own ``LimitOutput`` counts lines only, and one line
  can be a gigabyte.
- :class:`StripGraderTracebacks` removes, from the error output of every cell, the traceback
  frames that show instructor-only code (``autograder/``, ``solutions/``, the hidden lines of a
  test cell): the feedback shows the failing check's message and the student's own frames.
"""

from __future__ import annotations

import ast
import re

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from autograder.engine import check_kernel, check_server
from autograder.engine.limited_execute import LimitedExecute

VERDICTS = "xai_kit_verdicts"
INSTRUCTOR_PATHS = re.compile(r"[/\\](autograder|solutions)[/\\][\w/\\.-]*\.py")
# A test cell's own frame quotes its source, hidden lines included.
HIDDEN_CODE = re.compile(r"HIDDEN TESTS|hidden\.run|autograder|grading_client")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """Traceback text without its terminal colour codes."""
    return ANSI.sub("", text)


class ExecuteWithTrustedChecks(LimitedExecute):
    """nbgrader's Execute with the hidden checks' server, and the kit's cell limits (CPU time per
    cell, a restarted kernel replayed: ``limited_execute``), which the check kernel gets too."""

    check_kernel_name = Unicode("", help="Kernel for the hidden lines of the test cells (``check_kernel``); "
                                "empty: they run in the notebook's own kernel").tag(config=True)
    check_kernel_sandbox = Unicode("", help="JSON of the check kernels' sandbox.SandboxLayout (ipc transport); "
                                   "empty without a sandbox").tag(config=True)
    check_zygote_pid = Integer(0, help="pid of the process the check kernels are forked from (see "
                               "zygote_pid)").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        server = check_server.ensure_running()
        server.begin_notebook()  # before the kernels start: they inherit the address and this notebook's token
        self._check_kernel = None
        if self.check_kernel_name:
            path = (resources or {}).get("metadata", {}).get("path") or "."
            self._check_kernel = check_kernel.CheckKernel(
                self.check_kernel_name, path, self.timeout, self.startup_timeout, self.check_kernel_sandbox,
                self.log, cpu_seconds=self.cell_cpu_seconds, zygote_pid=self.check_zygote_pid)
        try:
            nb, resources = super().preprocess(nb, resources, km)
        finally:
            if self._check_kernel is not None:
                self._check_kernel.shutdown()
                self._check_kernel = None
            verdicts = server.end_notebook()  # its check connections closed, its token void
        resources[VERDICTS] = verdicts
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        check_server.ensure_running().cell_started(index)
        checker = getattr(self, "_check_kernel", None)
        if checker is None:
            return super().preprocess_cell(cell, resources, index)
        kind = check_kernel.role(cell)
        if kind != "test":
            cell, resources = super().preprocess_cell(cell, resources, index)
            if kind == "function":
                checker.run_function_cell(cell.source)
            return cell, resources
        full = cell.source
        visible, hidden_lines = check_kernel.split_hidden(full)
        cell.source = visible
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        finally:
            cell.source = full
        if not any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            cell.outputs.extend(checker.run_hidden(hidden_lines))
        return cell, resources


def checks_named(source: str) -> set:
    """``{"module.check"}`` for every ``hidden.run("module", "check", ...)`` in a cell's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    named = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "hidden"
                and len(node.args) >= 2 and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                                                for arg in node.args[:2])):
            named.add(f"{node.args[0].value}.{node.args[1].value}")
    return named


def _as_display(output):
    """An ``execute_result`` as ``display_data``: still shown, never read as a score."""
    if output.get("output_type") != "execute_result":
        return output
    return nbformat.v4.new_output("display_data", data=output.get("data", {}), metadata=output.get("metadata", {}))


class ScoreTestCells(NbGraderPreprocessor):
    """Each autograded test cell: points only for no error and every named check passed (trusted)."""

    def preprocess(self, nb, resources):
        verdicts = resources.get(VERDICTS, {})
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            cell.outputs = [_as_display(output) for output in cell.get("outputs", [])]
            passed = {name for name, ok in verdicts.get(index, {}).items() if ok}
            missing = sorted(checks_named(cell.source) - passed)
            failed_already = any(output.get("output_type") == "error" for output in cell.outputs)
            if missing and not failed_already:
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="HiddenCheckFailed",
                    evalue=f"{len(missing)} hidden check(s) of this cell did not pass on the grader's side; score 0",
                    traceback=["HiddenCheckFailed: the grader did not see this cell's hidden checks pass"]))
        return nb, resources


class StripGraderTracebacks(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                frames = output.get("traceback", [])
                kept = [frame for frame in frames
                        if not INSTRUCTOR_PATHS.search(frame) and not HIDDEN_CODE.search(_plain(frame))]
                if len(kept) != len(frames):
                    kept.insert(max(len(kept) - 1, 0), "(frames inside the grader's hidden checks are not shown)")
                output["traceback"] = kept
        return cell, resources


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} characters cut by the grader]"


class LimitOutputCharacters(NbGraderPreprocessor):
    """Every output of every cell: text at most ``max_characters``, one image at most ``max_image_bytes``."""

    max_characters = 20_000
    max_image_bytes = 2_000_000

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        for output in cell.get("outputs", []):
            if "text" in output and isinstance(output["text"], str):
                output["text"] = _cut(output["text"], self.max_characters)
            if output.get("output_type") == "error":
                output["evalue"] = _cut(str(output.get("evalue", "")), self.max_characters)
                output["traceback"] = [_cut(str(frame), self.max_characters) for frame in output.get("traceback", [])]
            data = output.get("data", {})
            for kind, value in list(data.items()):
                text = "".join(value) if isinstance(value, list) else str(value)
                if kind.startswith("image/") and len(text) > self.max_image_bytes:
                    del data[kind]
                    data["text/plain"] = f"[an image of {len(text)} bytes, removed by the grader]"
                elif not kind.startswith("image/"):
                    data[kind] = _cut(text, self.max_characters)
        return cell, resources
