"""The check kernel: the second kernel of a graded notebook, where the hidden checks call its functions.

Why a second kernel. An assignment that asks students to write Grad-CAM cannot let the graded
function call pytorch-grad-cam's. Looking for library names in the student's code is no
boundary (``getattr(library_cams, "library_" + "grad_cam")`` has no name to see, and a correct
helper that happens to be called ``rankdata`` is refused); and the notebook itself needs the
libraries, for the comparisons of its visible tests and for its figures. So every graded notebook
runs in two kernels, both sandboxed:

- the **notebook kernel** runs every cell as nbgrader would, hidden lines of the test cells
  excepted. The libraries are there; the hidden checks' server is not (no socket, no address):
  nothing this kernel does reaches a verdict;
- the **check kernel** runs only what the student's functions are made of: the set-up cell, the
  cells that bring in the tools of earlier assignments (ids starting with ``tools_``) and every
  solution cell, in the notebook's order, and then, in each test cell, the hidden lines
  (``hidden.run(...)``). It starts when the first hidden lines are due (the first test cell
  whose visible part passed), with the cells before them: a blank notebook never starts one.
  The libraries that the assignments ask students to write themselves
  (:func:`hidden_libraries`: the ``HIDDEN_LIBRARIES`` of every module of
  ``autograder/engine/checks``) cannot be imported there: in the bubblewrap sandbox their package
  folders are replaced by a package that raises ``ImportError`` (a mount: nothing the kernel does
  brings the real files back), and the zygote it is forked from never imported them. Without a
  sandbox (``--sandbox none``, trusted submissions only) the same package is first on
  ``sys.path``, which a notebook could undo, like everything else in that mode.

So a graded function that uses the library, under any name, fails its hidden checks with the
``ImportError``; a correct one passes whatever its names.

The cell roles are nbgrader's metadata (``solution``, ``grade_id``) and the cell's id
(``tools_*``). What the check kernel prints is dropped, except for the hidden lines of a test
cell: their output (a failed check's message) is added to that cell's outputs, so the feedback
shows it. Each piece of code the check kernel runs has the notebook kernel's limits: the cell's
CPU seconds (``cpu_clock``: the check kernel's process tree) and the wall-clock backstop. A
check kernel that dies or runs out of time is started again and the cells it had run are run
again before the next hidden lines.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import re
from pathlib import Path

BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
TOOLS_CELL_ID = re.compile(r"^tools_")
STUB_SOURCE = '''"""Not available here: the grader hides this library where your functions are graded."""
raise ImportError(
    "{name} is not available where your functions are graded: the assignment asks you to write "
    "this method yourself, so your graded functions must not use {name} (its visible tests and "
    "figures may)")
'''


def hidden_libraries() -> tuple[str, ...]:
    """Top-level import names of the libraries no graded function may use: the union of the
    ``HIDDEN_LIBRARIES`` of the check modules (one per assignment; all five share one check kernel)."""
    import autograder.engine.checks

    names: set[str] = set()
    for info in pkgutil.iter_modules(autograder.engine.checks.__path__):
        module = importlib.import_module(f"autograder.engine.checks.{info.name}")
        names.update(getattr(module, "HIDDEN_LIBRARIES", ()))
    return tuple(sorted(names))


def installed_package_folders(names=None) -> dict[str, str]:
    """``{name: folder}`` of the hidden libraries installed here (a package's folder, or a module's
    file), as this Python finds them: what the sandbox must cover."""
    found = {}
    for name in hidden_libraries() if names is None else names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                found[name] = str(Path(folder).resolve())
        elif spec.origin:
            found[name] = str(Path(spec.origin).resolve())
    return found


def write_stub_packages(folder: Path, names=None) -> Path:
    """Write, under ``folder``, a package per hidden library whose import raises ``ImportError``
    with a message for the student; return ``folder`` (put it first on ``sys.path``, or mount each
    package over the real one)."""
    folder = Path(folder)
    for name in hidden_libraries() if names is None else names:
        package = folder / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(STUB_SOURCE.format(name=name))
    return folder


def split_hidden(source: str) -> tuple[str, str]:
    """``(visible, hidden)``: a test cell's source without its hidden block, and that block's lines."""
    if BEGIN_HIDDEN not in source:
        return source, ""
    before, _, rest = source.partition(BEGIN_HIDDEN)
    hidden, _, after = rest.partition(END_HIDDEN)
    return before + after, hidden.strip("\n")


def role(cell) -> str:
    """What a cell is to the check kernel: ``"function"`` (run there too: set-up, tools, solution),
    ``"test"`` (a graded test cell: its hidden lines run there), or ``"notebook"`` (only in the
    notebook kernel)."""
    if cell.get("cell_type") != "code":
        return "notebook"
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution") or meta.get("grade_id") == "setup" or TOOLS_CELL_ID.match(str(cell.get("id", ""))):
        return "function"
    if meta.get("grade") and BEGIN_HIDDEN in cell.get("source", ""):
        return "test"
    return "notebook"


class CheckKernel:
    """A kernel of ``kernel_name`` started in ``cwd``, fed code cell by cell.

    :meth:`run_function_cell` keeps a set-up, tools or solution cell's source (and runs it if the
    kernel is up); :meth:`run_hidden` starts the kernel when it is not up (the first hidden lines,
    or after a death or a time-out) and replays them first. ``cpu_seconds``: CPU seconds per cell
    (0: none), ``timeout``: wall-clock seconds per cell (the backstop), as the notebook kernel's;
    ``zygote_pid``: the process the check kernels are forked from (its tree is the kernel's, with
    the launcher's)."""

    def __init__(self, kernel_name: str, cwd: str, timeout: float | None, startup_timeout: float = 120,
                 sandbox_layout: str = "", log=None, cpu_seconds: float = 0, zygote_pid: int = 0):
        self.kernel_name, self.cwd, self.timeout = kernel_name, cwd, timeout
        self.cpu_seconds, self.zygote_pid = cpu_seconds, zygote_pid
        self.sandbox_layout = sandbox_layout  # JSON of its sandbox.SandboxLayout, "" without a sandbox
        self.startup_timeout = startup_timeout
        self.log = log
        self.replay: list[str] = []
        self.km = self.kc = None
        self.healthy = False

    def start(self) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name=self.kernel_name)
        if self.sandbox_layout:
            # ZMQ over ipc sockets in the check sandbox's handoff folder, the connection file in
            # its connections folder (bound read-only there), as for the notebook's kernel.
            import json
            import uuid

            from autograder.engine.sandbox import SandboxLayout

            layout = SandboxLayout(**json.loads(self.sandbox_layout))
            self.km.transport, self.km.ip = "ipc", layout.ipc_prefix
            self.km.connection_file = str(Path(layout.connections) / f"kernel-{uuid.uuid4().hex}.json")
        self.km.start_kernel(cwd=self.cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=self.startup_timeout)
        self.healthy = True

    def shutdown(self) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            if self.km is not None:
                self.km.shutdown_kernel(now=True)
        finally:
            self.km = self.kc = None
            self.healthy = False

    def _execute(self, code: str) -> tuple[list, str | None]:
        """Run ``code``; return its outputs (as nbformat outputs) and what stopped it, None if it
        finished: a cell over its CPU seconds or its wall-clock time is left unanswered and the
        kernel marked for a restart (and a replay)."""
        import time
        from queue import Empty

        import nbformat

        from autograder.engine.cpu_clock import POLL_SECONDS, ProcessTreeClock, launcher_pid

        clock = ProcessTreeClock(lambda: [pid for pid in (launcher_pid(self.km), self.zygote_pid) if pid])
        deadline = None if not self.timeout else time.monotonic() + self.timeout
        request = self.kc.execute(code, store_history=False, allow_stdin=False)
        outputs: list = []
        next_look = time.monotonic() + POLL_SECONDS
        while True:
            if time.monotonic() >= next_look:  # (not at every message: a sample reads all of /proc)
                next_look = time.monotonic() + POLL_SECONDS
                stopped = self._over_limits(clock, deadline)
                if stopped:
                    self.healthy = False
                    return outputs, stopped
            try:
                message = self.kc.get_iopub_msg(timeout=POLL_SECONDS)
            except Empty:
                continue
            if message.get("parent_header", {}).get("msg_id") != request:
                continue
            kind = message["msg_type"]
            if kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append(nbformat.v4.output_from_msg(message))
            elif kind == "status" and message["content"].get("execution_state") == "idle":
                self._take_reply(request)
                return outputs, None

    def _over_limits(self, clock, deadline: float | None) -> str | None:
        """Why the running code must stop (over its CPU seconds or wall-clock time, or the kernel
        died), or None."""
        import time

        if self.cpu_seconds and clock.seconds() > self.cpu_seconds:
            return f"used more than {self.cpu_seconds} s of CPU time"
        if deadline is not None and time.monotonic() > deadline:
            return f"did not finish within {self.timeout} s (wall clock)"
        if not self.km.is_alive():
            return "stopped: the check kernel died"
        return None

    def _take_reply(self, request: str) -> None:
        """Read the finished request's execute_reply off the shell channel (so replies do not pile up)."""
        from queue import Empty

        try:
            while self.kc.get_shell_msg(timeout=5).get("parent_header", {}).get("msg_id") != request:
                pass
        except Empty:
            pass

    def _ensure_ready(self) -> None:
        if self.healthy and self.km is not None and self.km.is_alive():
            return
        if self.km is not None:
            self.shutdown()
        self.start()
        for code in self.replay:
            self._execute(code)

    def run_function_cell(self, source: str) -> None:
        """A set-up, tools or solution cell (its output and errors are the notebook kernel's
        business: dropped here): remembered, and run at once if the kernel is up. The kernel
        starts only for the first hidden lines (:meth:`run_hidden`), and runs the cells kept so
        far, in order, first: nothing else runs in it in between, so they run exactly as they
        would have when the notebook reached them. A notebook whose visible tests all fail (a
        blank one) never pays for the check kernel."""
        self.replay.append(source)
        if self.healthy and self.km is not None and self.km.is_alive():
            self._execute(source)

    def run_hidden(self, source: str) -> list:
        """Run a test cell's hidden lines; return the outputs to add to the cell (an error output
        when the kernel could not run them in time)."""
        import nbformat

        self._ensure_ready()
        outputs, stopped = self._execute(source)
        if stopped:
            message = f"the hidden checks of this cell {stopped}"
            outputs.append(nbformat.v4.new_output("error", ename="CellTimeoutError", evalue=message,
                                                  traceback=[f"CellTimeoutError: {message}"]))
        return outputs
