"""nbgrader preprocessors of the course (configured in ``autograder/course/nbgrader_config.py``).

- :class:`InjectGuard` puts a cell before the student's first cell that arms
  ``autograder.integrity`` (records the functions the checks rely on, takes this notebook's
  signing key) before any student code runs.
- :class:`ExecuteRecordingRequests` is nbgrader's ``Execute`` that also keeps the id of each
  cell's execute request.
- :class:`AuditTestCells` checks, outside the kernel, that every hidden check named in a test
  cell printed a valid pass signature in that cell (``autograder.hidden``); a cell without them
  gets an error output, so it scores 0 even if ``hidden.run`` was replaced by something that
  passes. The signature lines are then removed.
- :class:`RemoveGuard` takes the guard cell out again after execution (it never shows in feedback).
- :class:`StripGraderTracebacks` removes, from the error output of every cell, the traceback
  frames that run inside instructor-only code (``autograder/``, ``solutions/``): the feedback shows
  the failing check's message and the student's own frames, never the hidden check's code.
"""

from __future__ import annotations

import ast
import hmac
import os
import re
import secrets
import tempfile
import time
from queue import Empty

import nbformat
from jupyter_core.utils import ensure_async
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

from autograder.hidden import PASS_MARK
from autograder.integrity import pass_signature

GUARD_MARK = "xai_kit_guard"
GUARD_SOURCE = ("import autograder.integrity as _xai_integrity\n_xai_integrity.arm(key_file={key_file!r})\n"
                "del _xai_integrity")
KEY = "xai_kit_key"
KEY_FILE = "xai_kit_key_file"
REQUEST_IDS = "xai_kit_request_ids"
PASS_LINE = re.compile(rf"^{re.escape(PASS_MARK)} (\S+) ([0-9a-f]+)\n?", re.MULTILINE)
INSTRUCTOR_PATHS = re.compile(r"[/\\](autograder|solutions)[/\\][\w/\\.-]*\.py")
# A test cell's own frame quotes its source, hidden lines included.
HIDDEN_CODE = re.compile(r"HIDDEN TESTS|hidden\.run|autograder")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """Traceback text without its terminal colour codes."""
    return ANSI.sub("", text)


class InjectGuard(NbGraderPreprocessor):
    """Insert the guard cell; make this notebook's signing key (kept in ``resources``, handed to
    the kernel in a file the guard deletes once read)."""

    def preprocess(self, nb, resources):
        key = secrets.token_bytes(32)
        # In a sandbox, in a folder the kernel sees (and may delete the file from): XAI_KIT_KEY_DIR.
        descriptor, key_file = tempfile.mkstemp(prefix="xai-kit-key-", dir=os.environ.get("XAI_KIT_KEY_DIR"))
        with os.fdopen(descriptor, "w") as file:
            file.write(key.hex())
        resources[KEY], resources[KEY_FILE] = key, key_file
        guard = nbformat.v4.new_code_cell(GUARD_SOURCE.format(key_file=key_file))
        guard.metadata[GUARD_MARK] = True
        guard["id"] = GUARD_MARK
        nb.cells.insert(0, guard)
        return nb, resources


class ExecuteRecordingRequests(Execute):
    """nbgrader's Execute; also records ``{cell index: execute request id}`` in ``resources``, and
    restarts a kernel that ignores the interrupt sent when a cell runs out of time.

    Without the restart, a cell that swallows ``KeyboardInterrupt`` keeps the kernel busy, so every
    later cell waits its whole timeout too and the notebook is finally killed with a score of 0.
    With it, the looping cell scores 0 (``CellTimeoutError``), the cells before it keep their
    points, and the later cells run in a fresh kernel: they fail fast if they need the lost state,
    and the hidden checks fail closed there (the guard is not armed in the new kernel).
    """

    interrupt_grace_seconds = 10

    def preprocess(self, nb, resources=None, km=None):
        self._request_ids = {}
        nb, resources = super().preprocess(nb, resources, km)
        resources[REQUEST_IDS] = dict(self._request_ids)
        return nb, resources

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        self._request_ids[kwargs["cell_index"]] = kwargs["execute_reply"].get("parent_header", {}).get("msg_id")

    async def _async_handle_timeout(self, timeout, cell=None):
        reply = await super()._async_handle_timeout(timeout, cell)  # interrupts the kernel
        if self.interrupt_on_timeout and not await self._interrupted_cell_answered():
            self.log.error("The kernel ignored the interrupt: restarting it")
            await ensure_async(self.km.restart_kernel(now=True))
            await self._wait_for_kernel_info()
        return reply

    async def _wait_for_kernel_info(self) -> None:
        """Wait until the restarted kernel answers on the shell channel. (The client's own
        ``wait_for_ready`` also waits for an IOPub message, which nbclient's output poller,
        still running for the timed-out cell, may take first: it can wait forever.)"""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            request = self.kc.kernel_info()
            try:
                while True:
                    message = await ensure_async(self.kc.shell_channel.get_msg(timeout=1))
                    if message.get("parent_header", {}).get("msg_id") == request:
                        return
            except Empty:
                continue

    async def _interrupted_cell_answered(self) -> bool:
        """Whether the interrupted cell's execute_reply arrives within the grace period."""
        deadline = time.monotonic() + self.interrupt_grace_seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if message.get("msg_type") == "execute_reply":
                return True
        return False


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


def _take_signatures(cell) -> list[tuple[str, str]]:
    """Remove the pass-signature lines from a cell's stdout; return them as (check, signature)."""
    found, kept = [], []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and PASS_MARK in output.get("text", ""):
            found += PASS_LINE.findall(output.text)
            output.text = PASS_LINE.sub("", output.text)
            if not output.text:
                continue
        kept.append(output)
    cell.outputs = kept
    return found


class AuditTestCells(NbGraderPreprocessor):
    """A test cell keeps its points only if each hidden check it names signed its pass in it."""

    def preprocess(self, nb, resources):
        key, key_file = resources.get(KEY), resources.get(KEY_FILE)
        if key_file:
            try:
                os.unlink(key_file)  # normally deleted by the guard cell already
            except FileNotFoundError:
                pass
        if key is None:
            return nb, resources
        request_ids = resources.get(REQUEST_IDS, {})
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            signatures = _take_signatures(cell)
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not meta.get("grade") or meta.get("solution"):
                continue
            request_id = request_ids.get(index) or ""
            signed = {name for name, signature in signatures
                      if hmac.compare_digest(signature, pass_signature(key, request_id, name))}
            missing = checks_named(cell.source) - signed
            failed_already = any(output.get("output_type") == "error" for output in cell.outputs)
            if missing and not failed_already:
                cell.outputs.append(nbformat.v4.new_output(
                    "error", ename="HiddenCheckFailed",
                    evalue=f"{len(missing)} hidden check(s) of this cell did not run to the end: "
                           "the grading code was changed or bypassed by the notebook; score 0",
                    traceback=["HiddenCheckFailed: the hidden checks of this cell did not confirm that they passed"]))
        return nb, resources


class RemoveGuard(NbGraderPreprocessor):
    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if not cell.get("metadata", {}).get(GUARD_MARK)]
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
