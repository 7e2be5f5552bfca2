"""Jupyter kernels forked from a process that has already imported torch: grading without the wait.

Why: a fresh kernel spends 8-10 s of a 2-core machine importing torch, torchvision, matplotlib,
pytorch-grad-cam and captum before the first cell of a notebook runs: about half of the time
nbgrader needs to grade one of our notebooks. A *zygote* process imports them once; every
kernel is then a ``fork()`` of it (copy-on-write: about 0.1 s) that starts a normal IPython
kernel. Nothing a student runs happens in the zygote, so no state passes between notebooks.

The pieces:

- the zygote (``python -m autograder.prewarmed_kernel serve SOCKET``), started by the nbgrader
  worker and killed with it. It listens on a Unix socket; per request it forks a child that
  takes over the launcher's stdin/stdout/stderr (passed as file descriptors), environment,
  working directory and ``sys.path``, then runs ``IPKernelApp`` with the launcher's arguments.
  When a child exits, the zygote tells its launcher the exit code.
- the launcher (``python -m autograder.prewarmed_kernel launch -f CONNECTION_FILE``), the
  ``argv`` of the ``xai-prewarmed`` kernelspec, so what jupyter_client starts and signals. It
  costs a bare Python start-up. It forwards SIGINT (interrupt) and SIGTERM to the child and exits
  with the child's exit code. If it is killed (SIGKILL), the child notices: it holds the other
  end of the launcher's socket in a watchdog thread and exits when that socket closes. Without a
  reachable zygote (no ``XAI_KIT_KERNEL_ZYGOTE``, or the zygote is gone) the launcher simply
  becomes an ordinary kernel (``exec`` of ``ipykernel_launcher``).

The children are in the zygote's process group, which is the nbgrader worker's: killing the
worker's group (a notebook over its wall-clock limit) kills every kernel with it.
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


def install_kernelspec(jupyter_dir: Path, script: Path | None = None) -> Path:
    """Write the ``xai-prewarmed`` kernelspec under ``jupyter_dir/kernels/``; put ``jupyter_dir``
    on ``JUPYTER_PATH`` to make it visible. Returns the kernelspec folder.

    ``script``: this file, as the launcher runs it (default: where this module was loaded from).
    Kernels keep their input history in memory (as nbgrader asks of ``python3`` kernels).
    """
    folder = Path(jupyter_dir) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    # The launcher runs this file as a script: it needs only the standard library, whatever the
    # kernel's working directory and PYTHONPATH.
    script = Path(script or __file__).resolve()
    spec = {"argv": [sys.executable, str(script), "launch", "-f", "{connection_file}",
                     "--HistoryManager.hist_file=:memory:"],
            "display_name": "Python 3 (pre-warmed for grading)", "language": "python",
            "interrupt_mode": "signal", "metadata": {"debugger": False}}
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


def launch(arguments: list[str]) -> int:
    """The kernelspec's program: have the zygote fork a kernel, stand in for it until it exits."""
    address = os.environ.get(ZYGOTE_ENV)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not address:
            raise OSError("no zygote")
        connection.connect(address)
        # sys.path as `python -m ipykernel_launcher` leaves it: PYTHONPATH and the site folders
        # (main() has already dropped this script's folder; IPython adds '' for the working folder).
        sys_path = list(sys.path)
        request = {"argv": arguments, "env": dict(os.environ), "cwd": os.getcwd(), "sys_path": sys_path}
        _send(connection, request, fds=[0, 1, 2])
        buffer = bytearray()
        started = _receive_line(connection, buffer)
        if started is None:
            raise OSError("the zygote closed the connection")
    except OSError:
        connection.close()
        _plain_kernel(arguments)  # does not return
    child = started["pid"]

    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    finished = _receive_line(connection, buffer)
    if finished is None:  # the zygote died: take the child down with it
        forward(signal.SIGKILL, None)
        return 1
    return int(finished["exit_code"])


# ---------------------------------------------------------------------------------------------
# Zygote side


def _child(connection: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the kernel the launcher asked for. Never returns."""
    code = 1
    try:
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.path[:] = [entry for entry in request["sys_path"] if entry != ""]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

        import threading

        def watch_launcher():
            try:
                while connection.recv(4096):
                    pass
            except OSError:
                pass
            os._exit(1)  # the launcher is gone: nobody can reach this kernel any more

        threading.Thread(target=watch_launcher, name="launcher-watchdog", daemon=True).start()
        arguments = list(request["argv"])
        if request["env"].get("JPY_PARENT_PID", "").isdigit():
            # IPKernelApp read JPY_PARENT_PID when the zygote imported it; give it the launcher's.
            arguments.append(f"--IPKernelApp.parent_handle={request['env']['JPY_PARENT_PID']}")
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


def _accept(listener: socket.socket, selector: selectors.BaseSelector, children: dict) -> None:
    connection, _ = listener.accept()
    payload, ancillary, _, _ = connection.recvmsg(1 << 20, socket.CMSG_SPACE(3 * array.array("i").itemsize))
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    buffer = bytearray(payload)
    request = _receive_line(connection, buffer)
    if request is None or len(fds) != 3:
        connection.close()
        for fd in fds:
            os.close(fd)
        return
    pid = os.fork()
    if pid == 0:  # the child keeps only its own connection and the launcher's stdio
        selector.close()
        listener.close()
        for other in children.values():
            other.close()
        _child(connection, request, list(fds))
    for fd in fds:
        os.close(fd)
    children[pid] = connection
    _send(connection, {"pid": pid})
    selector.register(connection, selectors.EVENT_READ, data=pid)


def _launcher_gone(selector: selectors.BaseSelector, connection: socket.socket, pid: int, children: dict) -> None:
    """A launcher closed its connection (it was killed: a kernel restart or shutdown). Kill its
    kernel *and wait until it is gone* before serving the next request: a restarted kernel reuses
    the same ports, which the old one must have released."""
    try:
        if connection.recv(4096):
            return  # launchers send nothing after their request; ignore it
    except OSError:
        pass
    selector.unregister(connection)
    connection.close()
    if children.pop(pid, None) is not None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _reap(selector: selectors.BaseSelector, children: dict) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = children.pop(pid, None)
        if connection is not None:
            try:
                _send(connection, {"exit_code": os.waitstatus_to_exitcode(status)})
            except OSError:
                pass
            selector.unregister(connection)
            connection.close()


def serve(address: str) -> int:
    """The zygote: listen at ``address`` at once, import the heavy libraries, then fork kernels."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(16)  # launchers may connect now; they wait while we import
    parent = os.getppid()
    backend_was_set = "MPLBACKEND" in os.environ
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    import importlib

    for name in PREIMPORTS:
        importlib.import_module(name)
    if not backend_was_set:
        del os.environ["MPLBACKEND"]
    children: dict = {}
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        while os.getppid() == parent:  # the nbgrader worker that started us is still there
            events = selector.select(timeout=0.2)
            for key, _ in events:  # first the launchers that are gone, then new requests
                if key.fileobj is not listener:
                    _launcher_gone(selector, key.fileobj, key.data, children)
            if any(key.fileobj is listener for key, _ in events):
                _accept(listener, selector, children)
            _reap(selector, children)
    return 0


def start_zygote(address: str, env: dict | None = None, wait_seconds: float = 60):
    """Start a zygote listening at ``address`` (same session and process group as the caller).

    Returns once the zygote listens (it binds its socket before importing anything), so that a
    kernel started right after is forked, not started plain; after ``wait_seconds`` without a
    socket, or if the zygote died, kernels simply start plain.
    """
    import subprocess
    import time

    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", address],
                               env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_seconds
    while not Path(address).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


def activate(runtime: Path):
    """In this process: make the ``xai-prewarmed`` kernelspec visible (``JUPYTER_PATH``), start a
    zygote with this process's environment and point kernels at it; return the zygote's Popen.
    ``runtime`` holds the kernelspec (kept if already there) and the socket."""
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
    return start_zygote(str(address))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run as a script: autograder/'s modules must not become top-level names
    if argv[:1] == ["serve"] and len(argv) == 2:
        return serve(argv[1])
    if argv[:1] == ["launch"]:
        return launch(argv[1:])
    print("usage: python -m autograder.prewarmed_kernel serve SOCKET | launch -f CONNECTION_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
