"""One long-lived nbgrader process per course folder, driven one request at a time.

Why: every ``nbgrader`` command line pays 3-5 s of Python start-up and imports before it does any
work; grading a student's four notebooks with ``autograde`` plus ``generate_feedback`` paid it
eight times. A worker pays it once and then serves requests through nbgrader's own Python API
(``nbgrader.apps.NbGraderAPI``), with the course's ``nbgrader_config.py``.

Isolation: each notebook runs in a fresh Jupyter kernel started by nbgrader, with ``sandbox``
in a bubblewrap sandbox (``autograder.engine.sandbox``: the zygote and its kernels run in it, ZMQ talks
over ipc sockets), and the parent can always kill the worker (its own session, killed as a group,
bwrap with it) and start a new one: a notebook that never finishes costs only its own row.

Server side (this module run as a program)::

    python -m autograder.engine.nbgrader_worker COURSE [--cell-seconds S] [--no-db] [--prewarm]
        [--sandbox-root DIR [--code DIR] [--memory-mb MB]]

says ``{"ready": true}`` once started, then reads one JSON request per line on stdin,
``{"command": "autograde" | "generate_feedback" | "generate_assignment", "assignment": ID,
"student": ID}``, and answers each with one JSON line
``{"success": bool, "error": traceback, "log": text}`` on its original stdout. Anything else the
process prints goes to stderr, so a chatty library cannot corrupt the answers.

Client side: :class:`NbgraderWorker`.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.engine import isolated_python
from autograder.engine.cpu_clock import POLL_SECONDS, ProcessTreeClock, descendants
from autograder.engine.limits import CELL_WALL_FACTOR

COMMANDS = ("autograde", "generate_feedback", "generate_assignment")
#: Wall-clock seconds a worker may take to start (import nbgrader, start its zygotes) and say so.
STARTUP_SECONDS = 600
#: The kernelspec of the check kernels (``check_kernel``): the hidden lines of the test cells run there.
CHECK_KERNEL_NAME = "xai-checks"


class WorkerError(RuntimeError):
    """nbgrader reported a failure, or the worker process died; the message says which and why."""


class CpuTimeExceeded(subprocess.TimeoutExpired):
    """A request's worker tree (nbgrader, its kernels, bwrap) used more than the request's CPU
    seconds; the worker was killed. ``timeout`` holds those CPU seconds."""

    def __str__(self):
        return f"{self.cmd} used more than {self.timeout} s of CPU time"


def limit_memory(megabytes: int):
    """preexec_fn: cap the address space of a process and of the kernels it starts (inherited)."""
    def apply():
        import resource

        limit = megabytes * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


class NbgraderWorker:
    """Client of one worker process serving the nbgrader course at ``course``.

    ``env``: environment of the worker and its kernels; ``memory_mb``: address-space cap of both;
    ``cell_seconds``: CPU seconds per cell (``limited_execute``; the wall-clock backstop
    ``limits.CELL_WALL_FACTOR`` times that); ``no_database``: like ``--no-db``; ``prewarm``:
    run notebooks in kernels forked from a process that has imported torch (``prewarmed_kernel``);
    ``runtime``: folder for the pre-warmed kernelspec and socket (default ``course/.prewarmed``);
    ``sandbox``: ``"bwrap"`` runs every kernel in a bubblewrap sandbox (``autograder.engine.sandbox``),
    importing the grader code from ``code`` (a private copy, never the kit's checkout; made in the
    sandbox's folder if not given), ``"none"`` runs kernels with the grader's user, files and network.
    The process starts on the first request and after any :meth:`kill`. Use as a context manager
    (or call :meth:`close`) so it never outlives its user.
    """

    def __init__(self, course: Path, env: dict | None = None, memory_mb: int | None = None,
                 cell_seconds: int | None = None, no_database: bool = False, prewarm: bool = False,
                 runtime: Path | None = None, sandbox: str = "none", code: Path | None = None):
        if sandbox not in ("bwrap", "none"):
            raise ValueError(f"sandbox must be 'bwrap' or 'none', not {sandbox!r}")
        self.course = Path(course)
        self.env = env
        self.memory_mb = memory_mb
        self.sandbox = sandbox
        self.code = code
        self._sandbox_root: str | None = None
        self.arguments = [str(self.course)]
        if cell_seconds is not None:
            self.arguments += ["--cell-seconds", str(cell_seconds)]
        if no_database:
            self.arguments.append("--no-db")
        if prewarm:
            self.arguments.append("--prewarm")
        if runtime is not None:
            self.arguments += ["--runtime", str(runtime)]
        self._process: subprocess.Popen | None = None
        self._log = None
        self._buffer = b""

    def __enter__(self) -> NbgraderWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _sandbox_arguments(self) -> list[str]:
        """A fresh folder for the sandbox's jobs, sockets and connection files (removed by
        :meth:`kill`), and what the worker needs to build the sandbox."""
        if self.sandbox == "none":
            return []
        base = tempfile.gettempdir()
        self._sandbox_root = tempfile.mkdtemp(prefix="xai-sb-", dir=base if len(base) < 40 else "/tmp")
        arguments = ["--sandbox-root", self._sandbox_root]
        if self.code is not None:
            arguments += ["--code", str(self.code)]
        if self.memory_mb:
            arguments += ["--memory-mb", str(self.memory_mb)]
        return arguments

    def _start(self) -> None:
        self._log = tempfile.TemporaryFile()
        self._buffer = b""
        arguments = [*self.arguments, *self._sandbox_arguments()]
        self._process = subprocess.Popen(  # -I -B, the code folders explicit (isolated_python)
            isolated_python.command("autograder.engine.nbgrader_worker", arguments, self.env), cwd=self.course,
            env=isolated_python.environment(self.env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True, preexec_fn=limit_memory(self.memory_mb) if self.memory_mb else None)
        # The worker's start-up (nbgrader's imports) is no notebook's: wait for it before any
        # request's clock starts. (The zygotes import torch meanwhile; what is left of that when
        # the worker is ready, a few CPU seconds, still counts for its first notebook.)
        try:
            self._read_line(STARTUP_SECONDS, None, "the nbgrader worker's start-up")
        except subprocess.TimeoutExpired as error:
            raise WorkerError(f"the nbgrader worker did not start within {STARTUP_SECONDS} s") from error

    def request(self, command: str, assignment: str, student: str | None = None,
                timeout: float | None = None, cpu_seconds: float | None = None) -> str:
        """Run one nbgrader command; return its log. Raise ``subprocess.TimeoutExpired`` after
        ``timeout`` seconds of wall-clock time, :class:`CpuTimeExceeded` (a ``TimeoutExpired``)
        once the worker's process tree (nbgrader, bwrap, zygotes, kernels: ``cpu_clock``) has used
        ``cpu_seconds`` of CPU time on this request (either way the worker and its kernels are
        then killed), or :class:`WorkerError`."""
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; one of {COMMANDS}")
        if self._process is None:
            self._start()
        line = json.dumps({"command": command, "assignment": assignment, "student": student}) + "\n"
        try:
            self._process.stdin.write(line.encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            message = self._death_message()
            self.kill()
            raise WorkerError(message) from None
        answer = self._read_line(timeout, cpu_seconds, f"nbgrader {command} {assignment} {student or ''}".strip())
        if not answer.get("success"):
            raise WorkerError(f"nbgrader {command} {assignment} {student or ''} failed:\n"
                              f"{answer.get('log', '')[-4000:]}\n{answer.get('error', '')[-4000:]}")
        return answer.get("log", "")

    def _read_line(self, timeout: float | None, cpu_seconds: float | None, what: str) -> dict:
        """The worker's next answer, waiting at most ``timeout`` seconds and ``cpu_seconds`` of
        the worker tree's CPU time (sampled every ``cpu_clock.POLL_SECONDS``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        clock = ProcessTreeClock([self._process.pid]) if cpu_seconds else None
        stdout = self._process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self.kill()
                    raise subprocess.TimeoutExpired(what, timeout)
                if clock is not None and clock.seconds() > cpu_seconds:
                    self.kill()
                    raise CpuTimeExceeded(what, cpu_seconds)
                if not selector.select(POLL_SECONDS if left is None else min(left, POLL_SECONDS)):
                    continue
                chunk = os.read(stdout, 65536)
                if not chunk:
                    message = self._death_message()
                    self.kill()
                    raise WorkerError(message)
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _death_message(self) -> str:
        try:
            code = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = "none: it closed its output but kept running"
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace")[-2000:]
        return f"the nbgrader worker stopped (exit code {code}):\n{tail}"

    def kill(self) -> None:
        """Kill the worker and everything in its session (nbgrader and the kernel it runs)."""
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.wait()
            self._process.stdin.close()
            self._process.stdout.close()
            self._log.close()
            self._process = None
        if self._sandbox_root is not None:
            import shutil

            shutil.rmtree(self._sandbox_root, ignore_errors=True)
            self._sandbox_root = None

    def close(self) -> None:
        """Ask the worker to stop (end of input), then kill whatever is left."""
        if self._process is not None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass
            self.kill()


def _stubs_first_on_path(runtime: Path) -> str:
    """A ``PYTHONPATH`` for check kernels outside a sandbox: the library stubs (``check_kernel``,
    written under ``runtime``) first, then this process's own."""
    from autograder.engine import check_kernel

    stubs = check_kernel.write_stub_packages(runtime / "library-stubs")
    return os.pathsep.join(filter(None, [str(stubs), os.environ.get("PYTHONPATH")]))


def _start_prewarmed_kernels(runtime: Path, config) -> set[int]:
    """Have nbgrader run notebooks in kernels forked from a zygote (see ``prewarmed_kernel``),
    and their hidden checks in check kernels forked from a second one (``check_kernel``; no
    sandbox: the library stubs are only first on ``sys.path``); return the zygotes' pids (they
    die with this process: same process group)."""
    from autograder.engine import prewarmed_kernel

    zygote = prewarmed_kernel.activate(runtime)
    config.Execute.kernel_name = prewarmed_kernel.KERNEL_NAME
    runtime = Path(os.environ[prewarmed_kernel.ZYGOTE_ENV]).parent
    environment = dict(os.environ) | {"PYTHONPATH": _stubs_first_on_path(runtime)}
    checks = prewarmed_kernel.activate_check_kernel(runtime, environment, name=CHECK_KERNEL_NAME)
    config.ExecuteWithTrustedChecks.check_kernel_name = CHECK_KERNEL_NAME
    _count_cpu_of(zygote.pid, checks.pid, config)
    return {zygote.pid, checks.pid}


def _count_cpu_of(zygote: int, check_zygote: int, config) -> None:
    """Tell the cell limits (``limited_execute``) which trees hold the kernels: below the two
    zygotes (or the bwrap processes around them), beside the launchers jupyter_client starts."""
    config.ExecuteWithTrustedChecks.zygote_pid = zygote
    config.ExecuteWithTrustedChecks.check_zygote_pid = check_zygote


def _install_plain_check_kernel(runtime: Path, config) -> None:
    """Without pre-warmed kernels and without a sandbox: the check kernel is an ordinary kernel
    with the library stubs first on its ``sys.path`` (``check_kernel``)."""
    import json

    runtime.mkdir(parents=True, exist_ok=True)
    path = _stubs_first_on_path(runtime)
    folder = runtime / "jupyter" / "kernels" / CHECK_KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (hidden checks)", "language": "python", "env": {"PYTHONPATH": path}}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(runtime / "jupyter"), os.environ.get("JUPYTER_PATH")]))
    config.ExecuteWithTrustedChecks.check_kernel_name = CHECK_KERNEL_NAME


def _start_sandbox(sandbox_root: Path, code: Path | None, memory_mb: int | None, prewarm: bool,
                   runtime: Path, config) -> None:
    """Run every kernel nbgrader starts in a bubblewrap sandbox (``autograder.engine.sandbox``).

    The zygote runs in bwrap (``prewarm`` False: it imports nothing, so each kernel starts as
    cold as an ordinary one, still inside). The kernels are in their own network namespace, so
    jupyter_client talks to them over ZMQ ipc sockets (``KernelManager.transport``) in the
    sandbox's handoff folder; connection files go to this process's TMPDIR, bound read-only. The
    kernels' only code of the kit is a copy of ``sandbox.KERNEL_CODE`` taken from ``code`` (the
    worker's private copy; the checkout if not given): ``solutions`` and the checks are not in it.

    The hidden checks run in check kernels (``check_kernel``) of a second sandbox, forked from a
    second zygote: that sandbox alone has the checks' socket, and the libraries the assignments
    ask students to write are covered there (``sandbox.bwrap_command``'s ``masked``). The
    notebook kernels' sandbox has no socket of the checks.
    """
    import tempfile

    from autograder.engine import check_kernel, prewarmed_kernel, sandbox
    from autograder.authoring.source_format import REPO_ROOT

    sandbox_root = Path(sandbox_root)
    layout = sandbox.make_layout(memory_mb, root=sandbox_root / "nb")
    checks_layout = sandbox.make_layout(memory_mb, root=sandbox_root / "ck")
    code = sandbox.kernel_code_copy(sandbox_root / "code", Path(code) if code is not None else REPO_ROOT)
    stubs = check_kernel.write_stub_packages(sandbox_root / "library-stubs")
    masked = {real: stubs / name for name, real in check_kernel.installed_package_folders().items()}
    os.environ["PYTHONPATH"] = str(code)  # the kernels' only code of the kit: no checks, no solutions
    os.environ["TMPDIR"] = layout.connections
    tempfile.tempdir = None  # forget the folder tempfile has already chosen
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = layout.ipc_prefix
    config.Execute.kernel_name = prewarmed_kernel.KERNEL_NAME
    zygote = prewarmed_kernel.activate(runtime, sandbox_layout=layout, code=code, preimport=prewarm,
                                       check_socket=False)
    runtime = Path(os.environ[prewarmed_kernel.ZYGOTE_ENV]).parent
    checks = prewarmed_kernel.activate_check_kernel(runtime, dict(os.environ), sandbox_layout=checks_layout,
                                                    code=code, preimport=prewarm, masked=masked,
                                                    name=CHECK_KERNEL_NAME)
    config.ExecuteWithTrustedChecks.check_kernel_name = CHECK_KERNEL_NAME
    _count_cpu_of(zygote.pid, checks.pid, config)
    config.ExecuteWithTrustedChecks.check_kernel_sandbox = checks_layout.to_env()


def _reserve_check_socket() -> None:
    """Choose where the hidden checks' server (``check_server``, started with the first notebook)
    will listen, before the sandbox is made: the sandbox binds that folder, read-only."""
    from autograder.engine import sandbox

    folder = Path(tempfile.mkdtemp(prefix="xai-checks-"))
    folder.chmod(0o755)
    os.environ[sandbox.CHECK_SOCKET_ENV] = str(folder / "checks.sock")


def _become_subreaper() -> None:
    """Linux: processes that a notebook leaves behind (also detached ones) become our children
    when their parent exits, so :func:`_kill_leftovers` can find them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _kill_leftovers(keep: set) -> None:
    """Between requests no kernel runs: kill every process below us except ``keep`` (the zygote),
    so nothing a graded notebook started in the background can touch the next one."""
    for pid in descendants(os.getpid()):
        if pid not in keep:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    while True:  # reap what was re-parented to us
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def start_api(course: Path, cell_seconds: int | None = None, no_database: bool = False, prewarm: bool = False,
              runtime: Path | None = None, sandbox_root: Path | None = None, code: Path | None = None,
              memory_mb: int | None = None):
    """Everything a worker needs before its first request, in this process: the hidden checks'
    socket reserved, the sandbox (or, without one, this process a subreaper) and the zygotes
    started, nbgrader imported and configured from ``course/nbgrader_config.py``.

    Returns ``(api, keep)``: the ``NbGraderAPI``, and the pids to spare between requests (the
    zygotes; ``None`` in a sandbox, where the zygote sweeps its own processes).
    ``benchmarks/profile_grading.py`` calls this too, to time a worker's requests in-process."""
    from traitlets.config import Config

    os.chdir(course)
    keep: set | None = None
    config_for_prewarm = Config()
    runtime = runtime or course / ".prewarmed"
    # The hidden checks' server runs here; its socket's folder must exist before the sandbox is made.
    _reserve_check_socket()
    # Start the zygote first: it imports torch while we import nbgrader.
    if sandbox_root is not None:
        _start_sandbox(sandbox_root, code, memory_mb, prewarm, runtime, config_for_prewarm)
    else:
        _become_subreaper()
        if prewarm:
            keep = _start_prewarmed_kernels(runtime, config_for_prewarm)
        else:
            keep = set()
            _install_plain_check_kernel(runtime, config_for_prewarm)
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    # The worker's own gradebook, whatever the course's configuration names (a course made by
    # `course init` names its own: the grader merges into that one from a single process).
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    if cell_seconds is not None:  # CPU seconds; the wall clock is the backstop
        config.ExecuteWithTrustedChecks.cell_cpu_seconds = cell_seconds
        config.Execute.timeout = cell_seconds * CELL_WALL_FACTOR
    if no_database:
        config.SaveCells.enabled = False
        config.GenerateAssignment.no_database = True
    config.merge(config_for_prewarm)
    return NbGraderAPI(config=config), keep


def _serve(course: Path, cell_seconds: int | None, no_database: bool, prewarm: bool,
           runtime: Path | None = None, sandbox_root: Path | None = None, code: Path | None = None,
           memory_mb: int | None = None) -> int:
    """Serve requests. Without a sandbox, this process is a subreaper and kills whatever a
    notebook left running after each request; in one, the zygote does that inside it."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # from here on, print() and library chatter go to stderr
    api, keep = start_api(course, cell_seconds, no_database, prewarm, runtime, sandbox_root, code, memory_mb)
    answers.write(json.dumps({"ready": True}) + "\n")  # start-up done: requests' clocks start after it
    for line in sys.stdin:
        request = json.loads(line)
        command, assignment, student = request["command"], request["assignment"], request.get("student")
        if command == "generate_assignment":
            result = api.generate_assignment(assignment, force=True, create=not no_database)
        elif command == "autograde":
            result = api.autograde(assignment, student, force=True, create=True)
        elif command == "generate_feedback":
            result = api.generate_feedback(assignment, student, force=True)
        else:
            result = {"success": False, "error": f"unknown command {command!r}"}
        if keep is not None:
            _kill_leftovers(keep)
        answers.write(json.dumps(result) + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("course", type=Path)
    parser.add_argument("--cell-seconds", type=int)
    parser.add_argument("--no-db", action="store_true")
    parser.add_argument("--prewarm", action="store_true", help="run notebooks in pre-warmed kernels")
    parser.add_argument("--runtime", type=Path, help="folder for the pre-warmed kernelspec and socket")
    parser.add_argument("--sandbox-root", type=Path, help="run kernels in a bubblewrap sandbox kept here")
    parser.add_argument("--code", type=Path, help="the private code copy the sandboxed kernels import")
    parser.add_argument("--memory-mb", type=int, help="address-space limit of each sandboxed kernel")
    args = parser.parse_args(argv)
    return _serve(args.course.resolve(), args.cell_seconds, args.no_db, args.prewarm, args.runtime,
                  args.sandbox_root, args.code, args.memory_mb)


if __name__ == "__main__":
    sys.exit(main())
