"""Jupyter kernels forked from a process that has already imported torch: grading without the wait.

Why: a fresh kernel spends 8-10 s of a 2-core machine importing torch, torchvision, matplotlib,
pytorch-grad-cam and captum before the first cell of a notebook runs: about half of the time
nbgrader needs to grade one of our notebooks. A *zygote* process imports them once; every
kernel is then a ``fork()`` of it (copy-on-write: about 0.1 s) that starts a normal IPython
kernel. Nothing a student runs happens in the zygote, so no state passes between notebooks.

The pieces:

- the zygote (``python -m autograder.engine.prewarmed_kernel serve SOCKET``), started by the nbgrader
  worker and killed with it. It listens on a Unix socket; per request it forks a child that
  takes over the launcher's stdin/stdout/stderr (passed as file descriptors), environment,
  working directory and ``sys.path``, then runs ``IPKernelApp`` with the launcher's arguments.
  When a child exits, the zygote tells its launcher the exit code.
- the launcher (``python -m autograder.engine.prewarmed_kernel launch -f CONNECTION_FILE``), the
  ``argv`` of the ``xai-prewarmed`` kernelspec, so what jupyter_client starts and signals. It
  costs a bare Python start-up. It forwards SIGINT (interrupt) and SIGTERM to the child and exits
  with the child's exit code. If it is killed (SIGKILL), the child notices: it holds the other
  end of the launcher's socket in a watchdog thread and exits when that socket closes. Without a
  reachable zygote (no ``XAI_KIT_KERNEL_ZYGOTE``, or the zygote is gone) the launcher simply
  becomes an ordinary kernel (``exec`` of ``ipykernel_launcher``).

The children are in the zygote's process group, which is the nbgrader worker's: killing the
worker's group (a notebook over its CPU or wall-clock limit) kills every kernel with it.
"""

from __future__ import annotations

import array
import json
import os
import selectors
import signal
import socket
import sys
from pathlib import Path

ZYGOTE_ENV = "XAI_KIT_KERNEL_ZYGOTE"
KERNEL_NAME = "xai-prewarmed"
# What every graded notebook imports; matplotlib must see the inline backend a kernel would set.
PREIMPORTS = ("numpy", "torch", "torchvision", "matplotlib.pyplot", "pytorch_grad_cam", "captum.attr",
              "ipykernel.kernelapp")
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def install_kernelspec(jupyter_dir: Path, script: Path | None = None, name: str = KERNEL_NAME,
                       env: dict | None = None) -> Path:
    """Write the ``name`` kernelspec (default ``xai-prewarmed``) under ``jupyter_dir/kernels/``; put
    ``jupyter_dir`` on ``JUPYTER_PATH`` to make it visible. Returns the kernelspec folder.

    ``script``: this file, as the launcher runs it (default: where this module was loaded from).
    ``env``: variables the launcher gets on top of the caller's (another zygote, another sandbox:
    the check kernel's). Kernels keep their input history in memory (as nbgrader asks of
    ``python3`` kernels).
    """
    folder = Path(jupyter_dir) / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    # The launcher runs this file as a script: it needs only the standard library, whatever the
    # kernel's working directory and PYTHONPATH.
    script = Path(script or __file__).resolve()
    spec = {"argv": [sys.executable, str(script), "launch", "-f", "{connection_file}",
                     "--HistoryManager.hist_file=:memory:"],
            "display_name": "Python 3 (pre-warmed for grading)", "language": "python",
            "interrupt_mode": "signal", "metadata": {"debugger": False}}
    if env:
        spec["env"] = dict(env)
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return folder


# ---------------------------------------------------------------------------------------------
# Launcher side


def _send(connection: socket.socket, message: dict, fds=()) -> None:
    payload = json.dumps(message).encode() + b"\n"
    if fds:
        connection.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        connection.sendall(payload)


def _receive_line(connection: socket.socket, buffer: bytearray) -> dict | None:
    while b"\n" not in buffer:
        chunk = connection.recv(4096)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line)


def _plain_kernel(arguments: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *arguments])


def _sandbox_layout():
    """The sandbox the zygote runs in (``sandbox.SANDBOX_ENV``), or None when there is none."""
    if not os.environ.get("XAI_KIT_SANDBOX"):
        return None
    from autograder.engine import sandbox  # found through PYTHONPATH (the worker's code copy)

    return sandbox.SandboxLayout.from_env()


def launch(arguments: list[str]) -> int:
    """The kernelspec's program: have the zygote fork a kernel, stand in for it until it exits.

    Signals (SIGINT: interrupt; SIGTERM) are passed on as messages to the zygote, which sends
    them to the kernel: the launcher may not even see the kernel's process (a sandbox's own PID
    namespace). In a sandbox only the kernel's own environment crosses (``sandbox.kernel_environment``,
    filtered here), the kernel works in a private copy of this folder's files (sent as open
    descriptors), and there is no falling back to an ordinary kernel outside it."""
    address = os.environ.get(ZYGOTE_ENV)
    layout = _sandbox_layout()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not address:
            raise OSError("no zygote")
        connection.connect(address)
        # sys.path as `python -m ipykernel_launcher` leaves it: PYTHONPATH and the site folders
        # (main() has already dropped this script's folder; IPython adds '' for the working folder).
        request = {"argv": arguments, "sys_path": list(sys.path)}
        if layout is None:
            _send(connection, request | {"env": dict(os.environ), "cwd": os.getcwd()}, fds=[0, 1, 2])
        else:
            from autograder.engine import sandbox

            names, files = sandbox.open_working_files(os.getcwd())
            try:
                _send(connection, request | {"env": sandbox.kernel_environment(dict(os.environ)), "files": names},
                      fds=[0, 1, 2, *files])
            finally:
                for descriptor in files:
                    os.close(descriptor)
        buffer = bytearray()
        started = _receive_line(connection, buffer)
        if started is None:
            raise OSError("the zygote closed the connection")
    except OSError as error:
        connection.close()
        if layout is not None:
            print(f"no sandboxed kernel: the zygote at {address} is not reachable ({error})", file=sys.stderr)
            return 1
        _plain_kernel(arguments)  # does not return

    def forward(signum, frame):
        try:
            _send(connection, {"signal": signum})
        except OSError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    finished = _receive_line(connection, buffer)
    if finished is None:  # the zygote died; the kernel notices when this process exits
        return 1
    return int(finished["exit_code"])


# ---------------------------------------------------------------------------------------------
# Zygote side


def _watch_launcher(connection: socket.socket) -> None:
    """Exit when the launcher's end of ``connection`` closes (nobody can reach this kernel any
    more). Waits for the hang-up only (POLLRDHUP), never reads: the signal messages the launcher
    sends on it are for the zygote."""
    import select

    poller = select.poll()
    poller.register(connection.fileno(), select.POLLRDHUP)
    while True:
        try:
            if any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL)
                   for _, events in poller.poll()):
                os._exit(1)
        except InterruptedError:
            continue


def _child(connection: socket.socket, request: dict, fds: list[int], layout=None) -> None:
    """In the forked child: become the kernel the launcher asked for. Never returns.

    ``layout``: the sandbox (``sandbox.SandboxLayout``) the zygote runs in: the kernel then gets
    only the allow-listed environment and its resource limits, before any student code. What it
    takes from ``request`` is removed from it."""
    code = 1
    try:
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        environment = request.pop("env")
        if layout is not None:
            from autograder.engine import sandbox

            environment = sandbox.kernel_environment(environment)
            sandbox.apply_kernel_limits(layout.memory_mb)
        os.environ.clear()
        os.environ.update(environment)
        os.chdir(request.pop("cwd"))
        sys.path[:] = [entry for entry in request.pop("sys_path") if entry != ""]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

        import threading

        threading.Thread(target=_watch_launcher, args=(connection,), name="launcher-watchdog", daemon=True).start()
        arguments = list(request.pop("argv"))
        if layout is not None:
            # The launcher's pid means nothing in the sandbox's PID namespace: no parent poller
            # (1 means none); the watchdog above ends the kernel when the launcher goes.
            arguments.append("--IPKernelApp.parent_handle=1")
        elif environment.get("JPY_PARENT_PID", "").isdigit():
            # IPKernelApp read JPY_PARENT_PID when the zygote imported it; give it the launcher's.
            arguments.append(f"--IPKernelApp.parent_handle={environment['JPY_PARENT_PID']}")
        sys.argv = [sys.argv[0], *arguments]
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=arguments)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    except BaseException:  # noqa: BLE001 (report anything, then leave without running the zygote's cleanup)
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Zygote:
    """The serving loop's state: the listener, the kernels running (``{pid: launcher connection}``)
    and, in a sandbox, its layout (``sandbox.SandboxLayout``): then only one kernel runs at a
    time, and before each fork and after each kernel every other process is killed and the
    private folders are emptied (``sandbox.reset_between_kernels``)."""

    def __init__(self, listener: socket.socket, layout=None):
        self.listener = listener
        self.layout = layout
        self.children: dict = {}
        self.buffers: dict = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)

    def _forget(self, pid: int, exit_code: int | None = None) -> None:
        connection = self.children.pop(pid, None)
        self.buffers.pop(pid, None)
        if connection is None:
            return
        if exit_code is not None:
            try:
                _send(connection, {"exit_code": exit_code})
            except OSError:
                pass
        self.selector.unregister(connection)
        connection.close()

    @property
    def _most_fds(self) -> int:
        """Descriptors a request may carry: the launcher's stdio, and in a sandbox its files."""
        if self.layout is None:
            return 3
        from autograder.engine import sandbox

        return 3 + sandbox.WORKING_FILES

    def _reset_sandbox(self) -> None:
        if self.layout is None:
            return
        from autograder.engine import sandbox

        for pid in list(self.children):  # one kernel at a time: a new request ends the old one
            self._forget(pid, exit_code=-signal.SIGKILL)
        sandbox.reset_between_kernels(self.layout)

    def _prepare(self, request, stdio: list[int], files: list[int]) -> None:
        """Check ``request`` (a JSON object; ``stdio``: the launcher's three standard streams). In
        a sandbox, reset it, then make the kernel's working folder (``request["cwd"]``) from
        ``files``, the descriptors of the files the launcher sent; outside one the request names
        its folder and sends no files. Raises ``ValueError`` for a bad request."""
        if not isinstance(request, dict) or len(stdio) != 3 or (self.layout is None and files):
            raise ValueError("a request needs a JSON object and the launcher's three standard streams")
        if self.layout is not None:
            from autograder.engine import sandbox

            self._reset_sandbox()
            request["cwd"] = sandbox.make_working_folder(self.layout, request.pop("files", None) or [], files)

    def accept(self) -> None:
        connection, _ = self.listener.accept()
        payload, ancillary, _, _ = connection.recvmsg(1 << 20, socket.CMSG_SPACE(self._most_fds * array.array("i").itemsize))
        fds = array.array("i")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        fds, files = list(fds[:3]), list(fds[3:])
        buffer = bytearray(payload)
        try:
            request = _receive_line(connection, buffer)
            self._prepare(request, fds, files)
        except (ValueError, OSError) as error:
            print(f"zygote: refused a request: {error}", file=sys.stderr)
            connection.close()
            for fd in fds:
                os.close(fd)
            return
        finally:
            for fd in files:  # copied into the working folder, or refused
                os.close(fd)
        del payload, buffer
        pid = os.fork()
        if pid == 0:  # the child keeps only its own connection and the launcher's stdio
            self.selector.close()
            self.listener.close()
            for other in self.children.values():
                other.close()
            _child(connection, request, fds, self.layout)
        for fd in fds:
            os.close(fd)
        self.children[pid] = connection
        self.buffers[pid] = bytearray()
        _send(connection, {"pid": pid})
        self.selector.register(connection, selectors.EVENT_READ, data=pid)

    def launcher_message(self, connection: socket.socket, pid: int) -> None:
        """A launcher sent a signal to pass on (SIGINT: interrupt, SIGTERM), or closed its
        connection (it was killed: a kernel restart or shutdown). Then kill its kernel *and wait
        until it is gone* before serving the next request: a restarted kernel reuses the same
        ports (or ipc socket paths), which the old one must have released."""
        try:
            chunk = connection.recv(4096)
        except OSError:
            chunk = b""
        if chunk:
            buffer = self.buffers.setdefault(pid, bytearray())
            buffer += chunk
            while b"\n" in buffer:
                line, _, rest = bytes(buffer).partition(b"\n")
                buffer[:] = rest
                try:
                    signum = int(json.loads(line).get("signal", 0))
                except (ValueError, AttributeError):
                    continue
                if signum in (signal.SIGINT, signal.SIGTERM):
                    try:
                        os.kill(pid, signum)
                    except ProcessLookupError:
                        pass
            return
        self._forget(pid)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self._reset_sandbox()

    def reap(self) -> None:
        """Tell the launchers of kernels that exited their exit codes; in a sandbox, clean up."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self._forget(pid, exit_code=os.waitstatus_to_exitcode(status))
                self._reset_sandbox()

    def run(self, parent: int) -> None:
        while os.getppid() == parent:  # whoever started us (the nbgrader worker, or bwrap) is still there
            events = self.selector.select(timeout=0.2)
            for key, _ in events:  # first the launchers' messages, then new requests
                if key.fileobj is not self.listener and key.data in self.children:
                    self.launcher_message(key.fileobj, key.data)
            if any(key.fileobj is self.listener for key, _ in events):
                self.accept()
            self.reap()


def _preimport() -> None:
    """Import what every notebook imports, with the inline backend a kernel would set."""
    import importlib

    backend_was_set = "MPLBACKEND" in os.environ
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    for name in PREIMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # hidden from this sandbox (the check kernel's: ``check_kernel``)
            pass
    if not backend_was_set:
        del os.environ["MPLBACKEND"]


def serve(listen_fd: int, preimport: bool = True) -> int:
    """The zygote: serve the listening Unix socket ``listen_fd`` (launchers may already be
    waiting on it), import the heavy libraries (unless ``preimport`` is False: kernels then start
    as cold as ordinary ones), then fork kernels. In a sandbox (``sandbox.SANDBOX_ENV``), first
    make this process undumpable and give it an empty HOME."""
    listener = socket.socket(fileno=listen_fd)
    parent = os.getppid()
    layout = None
    if os.environ.get("XAI_KIT_SANDBOX"):
        from autograder.engine import sandbox

        layout = sandbox.SandboxLayout.from_env()
        del os.environ[sandbox.SANDBOX_ENV]
        sandbox.make_undumpable()
        sandbox.make_home_folders()  # (a launcher may already have copied its folder into jobs)
    if preimport:
        _preimport()
    Zygote(listener, layout).run(parent)
    return 0


def listening_socket(address: str) -> socket.socket:
    """A Unix socket listening at ``address``, inheritable (it is the zygote's listener)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(16)  # launchers may connect now; they wait while the zygote imports
    listener.set_inheritable(True)
    return listener


def start_zygote(address: str, env: dict | None = None, sandbox_layout=None, code: Path | None = None,
                 preimport: bool = True, check_socket: bool = True, masked: dict | None = None):
    """Start a zygote listening at ``address`` (same session and process group as the caller).

    The socket listens before this returns (this process binds it and hands it over), so a
    kernel started right after is forked, not started plain. ``sandbox_layout`` (with ``code``,
    the private code copy the zygote runs from): run the zygote in bwrap (``sandbox``); the
    socket itself stays outside, only its open descriptor goes in. ``check_socket``, ``masked``:
    see ``sandbox.bwrap_command``.
    """
    import subprocess

    listener = listening_socket(address)
    script = Path(code) / "autograder" / "engine" / "prewarmed_kernel.py" if code else Path(__file__).resolve()
    program = [sys.executable, str(script), "serve", "--listen-fd", str(listener.fileno())]
    if not preimport:
        program.append("--no-preimport")
    handed_over, info_read = [listener.fileno()], None
    if sandbox_layout is not None:
        from autograder.engine import sandbox

        outside = dict(os.environ if env is None else env)
        info_read, info_write = os.pipe()  # where bwrap reports the sandbox's PID
        handed_over.append(info_write)
        program = sandbox.bwrap_command(program, sandbox_layout, code, outside, check_socket=check_socket,
                                        masked=masked, info_descriptor=info_write)
        env = sandbox.zygote_environment(sandbox_layout, outside, check_socket)  # bwrap's own, too
    try:
        process = subprocess.Popen(program, env=env, stdin=subprocess.DEVNULL, pass_fds=handed_over)
    except BaseException:
        if info_read is not None:
            os.close(info_read)
        raise
    finally:
        listener.close()
        for descriptor in handed_over[1:]:
            os.close(descriptor)
    if info_read is not None:
        try:
            sandbox.link_handoff(sandbox_layout, sandbox.sandbox_pid(info_read))
        except BaseException:
            process.kill()
            process.wait()
            raise
    return process


def activate(runtime: Path, sandbox_layout=None, code: Path | None = None, preimport: bool = True,
             check_socket: bool = True):
    """In this process: make the ``xai-prewarmed`` kernelspec visible (``JUPYTER_PATH``), start a
    zygote with this process's environment and point kernels at it; return the zygote's Popen.
    ``runtime`` holds the kernelspec (kept if already there) and the socket. ``sandbox_layout``,
    ``code``, ``preimport``: see :func:`start_zygote`; in a sandbox the launchers learn the
    layout from ``sandbox.SANDBOX_ENV``."""
    import tempfile

    runtime = Path(runtime)
    if len(str(runtime)) > 80:  # a Unix socket path must stay under ~100 bytes
        runtime = Path(tempfile.mkdtemp(prefix="xai-kernels-"))
    runtime.mkdir(parents=True, exist_ok=True)
    if not (runtime / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json").is_file():
        install_kernelspec(runtime / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(runtime / "jupyter"), os.environ.get("JUPYTER_PATH")]))
    address = runtime / f"zygote-{os.getpid()}.sock"
    address.unlink(missing_ok=True)
    os.environ[ZYGOTE_ENV] = str(address)
    if sandbox_layout is not None:
        from autograder.engine import sandbox

        os.environ[sandbox.SANDBOX_ENV] = sandbox_layout.to_env()
    return start_zygote(str(address), sandbox_layout=sandbox_layout, code=code, preimport=preimport,
                        check_socket=check_socket)


def activate_check_kernel(runtime: Path, environment: dict, sandbox_layout=None, code: Path | None = None,
                          preimport: bool = True, masked: dict | None = None, name: str = "xai-checks"):
    """A second zygote and kernelspec ``name`` for the check kernel (``check_kernel``): its
    launcher is told (kernelspec ``env``) to use this zygote and ``sandbox_layout``; ``environment``
    is the zygote's (its ``PYTHONPATH`` may put the library stubs first); ``masked``: library
    folders covered in its sandbox. This process's own variables are left as they are. Call it
    after :func:`activate` (which chooses ``runtime`` and makes the kernelspecs visible)."""
    runtime = Path(runtime)
    address = runtime / f"zygote-checks-{os.getpid()}.sock"
    address.unlink(missing_ok=True)
    env = {ZYGOTE_ENV: str(address)}
    if environment.get("PYTHONPATH"):
        env["PYTHONPATH"] = environment["PYTHONPATH"]
    if sandbox_layout is not None:
        from autograder.engine import sandbox

        env[sandbox.SANDBOX_ENV] = sandbox_layout.to_env()
    install_kernelspec(runtime / "jupyter", name=name, env=env)
    return start_zygote(str(address), env=environment, sandbox_layout=sandbox_layout, code=code,
                        preimport=preimport, check_socket=True, masked=masked)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run as a script: autograder/engine/'s modules must not become top-level names
    if argv[:2] == ["serve", "--listen-fd"] and len(argv) >= 3:
        return serve(int(argv[2]), preimport="--no-preimport" not in argv[3:])
    if argv[:1] == ["launch"]:
        return launch(argv[1:])
    print("usage: python -m autograder.engine.prewarmed_kernel serve --listen-fd FD [--no-preimport] | "
          "launch -f CONNECTION_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
