"""The sandbox every graded notebook runs in: bubblewrap (``bwrap``) namespaces around the zygote.

What runs inside: the pre-warmed zygote (``prewarmed_kernel serve``) and every kernel it forks,
so the libraries are imported once per worker and a kernel still costs a ``fork()``. What stays
outside: nbgrader, the gradebook, the launcher that jupyter_client starts, the rest of the grader.

The boundary, namespace by namespace (``bwrap --unshare-all``):

- **mount**: the sandbox sees only what is bound into it: read-only ``/usr`` (and the ``/bin``,
  ``/lib``, ``/lib64`` links of a merged-usr system), the Python installation (``sys.base_prefix``)
  and the virtual environment (``sys.prefix``) at their own paths, a handful of files of ``/etc``
  (:data:`ETC_FILES`, plus a one-line ``passwd`` and ``group`` for the sandbox's user), a fresh
  read-only ``/dev`` with its own ``/dev/mqueue``, a fresh ``/proc``, the private size-capped
  folders of :func:`private_folders` (tmpfs: ``/tmp``, ``HOME``, ``/dev/shm``, the jobs folder
  where each kernel gets a copy of its folder's files), the worker's private copy of the
  kernel's code (:data:`KERNEL_CODE`, read-only), the data folder (read-only), and the folders of
  :class:`SandboxLayout` that the Jupyter protocol needs (the connection files, read-only; the
  handoff folder of the kernels' ZMQ sockets is one more private capped tmpfs, which the grader
  reaches from outside through the sandbox's ``/proc/<pid>/root``: :func:`link_handoff`); the root
  itself is remounted read-only, so nothing new appears beside them. Not visible: the
  instructor's home, the kit's checkout, the course folder and its gradebook, the submissions, the
  output folder, other workers' folders, the IPython/Jupyter configuration of the grader.
- **network**: an own network namespace with only a loopback device: no TCP/UDP to anything,
  including the grader's ``127.0.0.1``. Kernels talk ZMQ over Unix sockets (``ipc`` transport)
  in :attr:`SandboxLayout.handoff`; outside, that path is a symbolic link into the sandbox's own
  mount namespace (:func:`link_handoff`), so the grader connects to the sockets where they are.
- **PID**: the sandbox's processes see only each other (bwrap's own PID 1 reaps orphans). The
  zygote kills every other process in it before each fork and after each kernel (see
  :func:`reset_between_kernels`): nothing a notebook starts in the background reaches the next one.
- **IPC, UTS**: own System V IPC objects, POSIX message queues and host name; the zygote removes
  every IPC object and message queue between kernels.
- **environment**: bwrap itself is started with only :func:`zygote_environment` (its memory and
  ``/proc/1/environ`` are readable from inside), and a launcher sends only its kernel's filtered
  environment to the zygote: no variable of the grader's reaches the sandbox's memory.
- **user**: the processes run as uid/gid 1000 with no capabilities (``--cap-drop ALL``) and may
  not create further user namespaces (``--disable-userns``). Outside, that uid is the grader's
  own: *when the grader runs as root, uid 1000 inside is root outside*, so the boundary is then
  the mount, PID and network namespaces alone (a kernel exploit or a leaked file descriptor would
  act as root). Run the grader as an ordinary user.
- ``--new-session``: no terminal to push keystrokes into (``TIOCSTI``); ``--die-with-parent``:
  when the nbgrader worker dies (a notebook over its CPU or wall-clock limit: ``grade`` kills the
  worker's process group), bwrap and everything inside die with it.

Limits set in each forked kernel before student code (:func:`apply_kernel_limits`): address
space, largest file, open files, no core files, and a process count that Linux enforces only when
the grader is not root (``RLIMIT_NPROC`` is never enforced for a uid that is root outside; the PID
namespace sweep is what stops leftovers then). CPU time is bounded by the cell and notebook
limits, which count it (``limited_execute``, ``cpu_clock``), with wall-clock backstops.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: The only code of the kit in the sandbox (a copy, read-only): the students' package (with the
#: hidden checks' client, ``student_src/grading_client.py``) and the zygote's own two modules.
#: ``solutions/`` and ``autograder/engine/checks/`` are not there: the checks run outside.
KERNEL_CODE = ("student_src", "autograder/__init__.py", "autograder/engine/__init__.py",
               "autograder/engine/prewarmed_kernel.py", "autograder/engine/sandbox.py")
#: Environment variable with the sandbox's :class:`SandboxLayout` (JSON): set for the launcher
#: (outside) and the zygote (inside), never for a kernel.
SANDBOX_ENV = "XAI_KIT_SANDBOX"
#: Unix socket of the trusted hidden-check process, if one runs: its folder is bound read-only.
CHECK_SOCKET_ENV = "XAI_CHECK_SOCKET"
#: The graded notebook's session token for that process (``check_server``; new per notebook).
CHECK_TOKEN_ENV = "XAI_CHECK_TOKEN"
UID = GID = 1000
HOME = "/home/grader"
#: Config folders a kernel would otherwise read from HOME; recreated empty for every kernel.
HOME_FOLDERS = {"IPYTHONDIR": ".ipython", "JUPYTER_CONFIG_DIR": ".jupyter", "JUPYTER_DATA_DIR": ".local/share/jupyter",
                "MPLCONFIGDIR": ".config/matplotlib"}
TMP_BYTES = 1 << 30
HOME_BYTES = 256 << 20
JOBS_BYTES = 1 << 30
SHM_BYTES = 256 << 20
#: The handoff folder holds only the kernels' ZMQ sockets (files of no size): a small cap.
HANDOFF_BYTES = 16 << 20
SHM, MQUEUE = "/dev/shm", "/dev/mqueue"
#: Private tmpfs folders of every sandbox and their sizes (see :func:`private_folders`).
PRIVATE_FOLDER_BYTES = {"/tmp": TMP_BYTES, HOME: HOME_BYTES, SHM: SHM_BYTES}
#: POSIX message queues (``/dev/mqueue``, the sandbox's own): bytes a kernel may hold in them.
MQUEUE_BYTES = 1 << 20
#: Regular files of the launcher's folder copied into the kernel's working folder, at most
#: (a Unix socket message carries at most 253 file descriptors, three of them the stdio).
WORKING_FILES = 200
LARGEST_FILE_BYTES = 256 << 20
OPEN_FILES = 1024
PROCESSES = 512
#: System folders bound read-only (or recreated as the same symlink, on a merged-usr system).
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
#: The only files of /etc a kernel needs: the dynamic linker's cache (libraries in
#: /usr/lib/<arch>), fontconfig's configuration (matplotlib runs fc-list) and the time zone.
ETC_FILES = ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime")
#: Variables a kernel inherits from the launcher's environment; everything else is dropped.
KERNEL_ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "NBGRADER_EXECUTION", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                      "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                      "PYTHONWARNINGS", "TQDM_DISABLE", "XAI_KIT_DATA_DIR", "XAI_KIT_STANDIN", CHECK_SOCKET_ENV,
                      CHECK_TOKEN_ENV, "JUPYTER_RUNTIME_DIR")
MISSING_MESSAGE = ("grading runs every notebook in a bubblewrap sandbox, and bwrap {problem}.\n"
                   "Install it (Debian/Ubuntu package bubblewrap: apt install bubblewrap; Fedora: dnf install "
                   "bubblewrap) on a Linux machine that allows unprivileged user namespaces, or grade with "
                   "--sandbox none if you trust every submission.")
NONE_WARNING = ("warning: --sandbox none: notebooks run with the grader's user, files and network; "
                "only do this for submissions you trust")


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create namespaces here; the message says what to install."""


@dataclass
class SandboxLayout:
    """The folders of one worker's sandbox, at the same path inside and outside.

    ``jobs`` (inside: a private tmpfs at that path): one fresh working folder per kernel, a copy
    of the files of the folder nbgrader runs it in. ``handoff`` (inside: a private tmpfs; outside:
    a link to it, :func:`link_handoff`): the kernels' ZMQ ipc sockets. ``connections`` (read-only inside): the
    connection files jupyter_client writes (the worker's TMPDIR). ``etc``: the sandbox's
    ``passwd`` and ``group``. ``memory_mb``: the kernels' address-space limit.
    """

    root: str
    jobs: str
    handoff: str
    connections: str
    etc: str
    memory_mb: int | None = None

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, environ=os.environ) -> SandboxLayout | None:
        value = environ.get(SANDBOX_ENV)
        return cls(**json.loads(value)) if value else None

    @property
    def ipc_prefix(self) -> str:
        """``KernelManager.ip`` for the ipc transport: sockets are ``<prefix>-<port>``."""
        return str(Path(self.handoff) / "k")


def kernel_code_copy(target: Path, source: Path) -> Path:
    """Copy :data:`KERNEL_CODE` from ``source`` (a code folder or the checkout) into ``target``."""
    for entry in KERNEL_CODE:
        origin, destination = Path(source) / entry, Path(target) / entry
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(origin, destination)
    return Path(target)


def make_layout(memory_mb: int | None = None, root: Path | None = None) -> SandboxLayout:
    """Create the folders of a new sandbox in ``root`` (default: a new temporary folder; keep
    its path short: a Unix socket path must stay under 108 bytes), with the sandbox user's
    ``passwd`` and ``group``."""
    if root is None:
        base = tempfile.gettempdir()
        root = tempfile.mkdtemp(prefix="xai-sb-", dir=base if len(base) < 40 else "/tmp")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    folders = {name: root / name for name in ("jobs", "handoff", "connections", "etc")}
    for folder in folders.values():
        folder.mkdir()
    (folders["etc"] / "passwd").write_text(f"grader:x:{UID}:{GID}:grader:{HOME}:/usr/sbin/nologin\n")
    (folders["etc"] / "group").write_text(f"grader:x:{GID}:\n")
    return SandboxLayout(str(root), *(str(folders[name]) for name in ("jobs", "handoff", "connections", "etc")),
                         memory_mb=memory_mb)


# ---------------------------------------------------------------------------------------------
# The bwrap command line (outside)


def _namespace_options() -> list[str]:
    """New mount, network, PID, IPC, UTS, cgroup and user namespaces; an unprivileged user with no
    capabilities; no terminal; dies with the process that started it."""
    return ["--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(GID), "--disable-userns",
            "--cap-drop", "ALL", "--new-session", "--die-with-parent"]


def _system_binds() -> list[str]:
    """Read-only system and Python folders, each at its own path (symlinks recreated as such)."""
    options = []
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            options += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            options += ["--ro-bind", folder, folder]
    for prefix in dict.fromkeys([sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix)]):
        if not prefix.startswith("/usr/"):  # a Python under /root/.pyenv: that folder itself, not /root
            options += ["--ro-bind", prefix, prefix]
    return options


def private_folders(layout: SandboxLayout) -> dict[str, int]:
    """``{folder: bytes}``: the only folders a kernel can create files in, each a size-capped
    tmpfs of the sandbox's own, emptied between kernels: /tmp, HOME, /dev/shm, the jobs folder
    (the kernels' working folders) and the handoff folder (their ZMQ sockets, which the grader
    alone reaches from outside, through :func:`link_handoff`)."""
    return PRIVATE_FOLDER_BYTES | {layout.jobs: JOBS_BYTES, layout.handoff: HANDOFF_BYTES}


def _private_folders(layout: SandboxLayout) -> list[str]:
    """Fresh /dev (null, zero, random, tty: no host devices), read-only, with its own POSIX
    message queues (/dev/mqueue); /proc (this PID namespace only); and :func:`private_folders`.
    /tmp first: the jobs folder may lie under it."""
    options = ["--dev", "/dev", "--mqueue", MQUEUE, "--proc", "/proc"]
    for folder, size in private_folders(layout).items():
        options += ["--size", str(size), *(["--perms", "0700"] if folder == HOME else []), "--tmpfs", folder]
    return [*options, "--remount-ro", "/dev"]


def _etc_binds(layout: SandboxLayout) -> list[str]:
    options = []
    for path in ETC_FILES:
        options += ["--ro-bind-try", path, path]
    for name in ("passwd", "group"):
        options += ["--ro-bind", str(Path(layout.etc) / name), f"/etc/{name}"]
    return options


def _grading_binds(layout: SandboxLayout, code: Path, env: dict, check_socket: bool) -> list[str]:
    """The grader's code copy and the data (read-only), the connection files (read-only), and with
    ``check_socket`` the trusted check socket's folder (read-only: the check kernel's sandbox
    only). Nothing of the grader's is bound writable."""
    from student_src import assets

    options = ["--ro-bind", str(code), str(code), "--ro-bind", layout.connections, layout.connections]
    data = env.get(assets.DATA_DIR_ENV) or str(assets.data_dir())
    options += ["--ro-bind-try", data, data]
    if check_socket and env.get(CHECK_SOCKET_ENV):
        folder = str(Path(env[CHECK_SOCKET_ENV]).parent)
        options += ["--ro-bind", folder, folder]
    return options


def _masks(masked: dict) -> list[str]:
    """``{real path: replacement}``: each library folder (or module file) covered, read-only, by
    the replacement (``check_kernel.write_stub_packages``): the real files are not reachable."""
    options = []
    for real, replacement in sorted(masked.items()):
        options += ["--ro-bind", str(replacement), str(real)]
    return options


def sandbox_environment(env: dict) -> dict:
    """The allow-listed part of ``env``, with HOME and the IPython/Jupyter/matplotlib folders
    pointing into the sandbox's private HOME."""
    kept = {name: env[name] for name in KERNEL_ENV_ALLOWED if name in env}
    kept.setdefault("PATH", "/usr/bin:/bin")
    kept["HOME"] = HOME
    kept.update({variable: f"{HOME}/{folder}" for variable, folder in HOME_FOLDERS.items()})
    return kept


def zygote_environment(layout: SandboxLayout, env: dict, check_socket: bool = True) -> dict:
    """The whole environment of the sandbox: the allow-listed part of ``env`` plus
    :data:`SANDBOX_ENV` (without the check socket's variable unless ``check_socket``). Give it to
    bwrap itself too (``Popen(env=...)``): bwrap's own memory and ``/proc/1/environ`` are
    readable from inside, so the grader's variables must not even reach bwrap."""
    environment = sandbox_environment(env) | {SANDBOX_ENV: layout.to_env()}
    if not check_socket:
        environment.pop(CHECK_SOCKET_ENV, None)
        environment.pop(CHECK_TOKEN_ENV, None)
    return environment


def bwrap_command(program: list[str], layout: SandboxLayout, code: Path, env: dict, check_socket: bool = True,
                  masked: dict | None = None, info_descriptor: int | None = None) -> list[str]:
    """The full ``bwrap`` command line that runs ``program`` (the zygote) in the sandbox, with
    :func:`zygote_environment` as its only environment.

    ``check_socket``: bind the hidden checks' socket folder and pass the notebook's check token
    (the check kernel's sandbox; not the notebook kernel's). ``masked``: ``{real path: replacement}``
    mounted over library folders. ``info_descriptor``: where bwrap reports the sandbox's PID
    (:func:`sandbox_pid`), which :func:`link_handoff` needs."""
    environment = zygote_environment(layout, env, check_socket)
    # The private folders first: a later bind under them (a venv or checkout in /tmp) stays
    # visible; made after them, the tmpfs would hide it. The masks last: over the system binds.
    options = ["bwrap", *_namespace_options(), *_private_folders(layout), *_system_binds(), *_etc_binds(layout),
               *_grading_binds(layout, Path(code), env, check_socket), *_masks(masked or {}),
               "--remount-ro", "/", "--chdir", "/", "--clearenv"]
    if info_descriptor is not None:
        options[1:1] = ["--info-fd", str(info_descriptor)]
    for name, value in environment.items():
        options += ["--setenv", name, value]
    return [*options, "--", *program]


def sandbox_pid(info_descriptor: int, timeout: float = 60) -> int:
    """The PID (outside) of the sandbox's first process, read from bwrap's ``--info-fd`` (a JSON
    object with ``child-pid``, written once its namespaces exist). Closes the descriptor."""
    import select

    text, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            try:
                return int(json.loads(text)["child-pid"])
            except (ValueError, KeyError):
                pass
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([info_descriptor], [], [], left)[0]:
                raise SandboxUnavailable(f"bwrap did not report its sandbox within {timeout:.0f} s")
            chunk = os.read(info_descriptor, 4096)
            if not chunk:
                raise SandboxUnavailable("bwrap exited before it made the sandbox (see its message above)")
            text += chunk
    finally:
        os.close(info_descriptor)


def link_handoff(layout: SandboxLayout, pid: int) -> None:
    """Outside: make ``layout.handoff`` a symbolic link to the same folder in the mount namespace
    of the sandbox process ``pid`` (``/proc/<pid>/root<handoff>``), where it is a private tmpfs.

    The grader's ZMQ client connects to the kernels' ipc sockets through it (a socket path stays
    the short ``<handoff>/k-<port>``; the kernel resolves the link). Reading another mount
    namespace's files through ``/proc/<pid>/root`` needs ptrace-read rights over ``pid``: the
    grader has them because it owns the sandbox's user namespace, even for undumpable processes.
    Nothing of the grader's disk is then writable from inside."""
    handoff = Path(layout.handoff)
    if handoff.is_symlink():
        handoff.unlink()
    elif handoff.is_dir():
        handoff.rmdir()  # the empty folder make_layout made
    handoff.symlink_to(f"/proc/{pid}/root{layout.handoff}")


def unavailable_reason() -> str | None:
    """Why bwrap cannot sandbox here (not installed, or no user namespaces), or None if it can:
    one trivial ``bwrap ... true`` with the namespaces grading uses."""
    if shutil.which("bwrap") is None:
        return MISSING_MESSAGE.format(problem="is not installed (no bwrap on PATH)")
    true = shutil.which("true") or "/bin/true"
    command = ["bwrap", *_namespace_options(), *_system_binds(), "--proc", "/proc", "--dev", "/dev", true]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return MISSING_MESSAGE.format(problem=f"could not run ({error})")
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        return MISSING_MESSAGE.format(problem=f"cannot create its namespaces here ({detail[0]})")
    return None


def require_bwrap() -> None:
    """Raise :class:`SandboxUnavailable` (with :data:`MISSING_MESSAGE`) unless bwrap works here."""
    reason = unavailable_reason()
    if reason is not None:
        raise SandboxUnavailable(reason)


def check_choice(choice: str) -> str | None:
    """For ``grade --sandbox CHOICE``: the message to stop with (bwrap cannot run), or None to go
    on; ``none`` prints :data:`NONE_WARNING` once."""
    if choice == "none":
        print(NONE_WARNING, file=sys.stderr)
        return None
    return unavailable_reason()


# ---------------------------------------------------------------------------------------------
# The launcher's side (outside): a private working folder


def open_working_files(source: str) -> tuple[list[str], list[int]]:
    """``(names, descriptors)``: the regular files of ``source`` (symlinks and sub-folders are
    not followed), opened read-only, for the zygote to copy into the kernel's private working
    folder (:func:`make_working_folder`). The caller closes the descriptors."""
    names = sorted(entry.name for entry in os.scandir(source) if entry.is_file(follow_symlinks=False))
    if len(names) > WORKING_FILES:
        raise OSError(f"{source} holds {len(names)} files; a sandboxed kernel's working folder takes at most "
                      f"{WORKING_FILES}")
    descriptors = []
    try:
        for name in names:
            descriptors.append(os.open(os.path.join(source, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
    except OSError:
        for descriptor in descriptors:
            os.close(descriptor)
        raise
    return names, descriptors


def make_working_folder(layout: SandboxLayout, names: list, descriptors: list[int]) -> str:
    """In the zygote: a new folder in the sandbox's private jobs folder holding a copy of each
    file ``descriptors[i]`` under ``names[i]`` (plain file names only): the kernel's working
    folder. The copy never passes through this process's memory (``sendfile``), which the next
    kernels inherit. Raises ``ValueError`` for a bad request; the caller closes the descriptors."""
    if len(names) != len(descriptors) or not all(
            isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name
            for name in names):
        raise ValueError("the working files' names must be plain file names, one per descriptor")
    target = tempfile.mkdtemp(prefix="job-", dir=layout.jobs)
    for name, descriptor in zip(names, descriptors):
        copy = os.open(os.path.join(target, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            offset = 0
            while sent := os.sendfile(copy, descriptor, offset, 1 << 30):
                offset += sent
        finally:
            os.close(copy)
    os.chmod(target, 0o755)
    return target


# ---------------------------------------------------------------------------------------------
# The zygote's side (inside)


def _inside_a_sandbox() -> bool:
    """Whether this process runs under bwrap's own PID 1: the guard before any mass kill."""
    try:
        return Path("/proc/1/comm").read_text().strip() == "bwrap"
    except OSError:
        return False


def _other_live_processes() -> list[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (1, me):
            try:
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                found.append(int(entry))
    return found


def kill_other_processes(timeout: float = 5) -> None:
    """Kill every process in the sandbox's PID namespace but this one (and bwrap's PID 1, which
    the kernel protects): ``kill(-1, SIGKILL)`` reaches exactly the processes this PID namespace
    shows, atomically with respect to fork. Reaps our own children; bwrap reaps the others."""
    if not _inside_a_sandbox():
        raise RuntimeError("refusing to kill every process: not inside the bwrap sandbox")
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not _other_live_processes() or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _mount_points() -> set[str]:
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        points.add(line.split()[4].replace("\\040", " "))
    return points


def _empty_folder(folder: str, mounts: set) -> None:
    """Remove everything in ``folder`` except the mount points inside it (the bind mounts that
    /tmp may hold), descending into folders that hold a mount point."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.path in mounts:
            continue
        if entry.is_dir(follow_symlinks=False):
            if any(mount.startswith(entry.path + "/") for mount in mounts):
                _empty_folder(entry.path, mounts)
            else:
                shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


def remove_ipc_objects() -> None:
    """Remove every System V shared memory segment, semaphore set and message queue of the
    sandbox's IPC namespace (all the sandbox user's own): they would outlive a kernel."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    remove = {"shm": lambda key: libc.shmctl(key, 0, None), "sem": lambda key: libc.semctl(key, 0, 0),
              "msg": lambda key: libc.msgctl(key, 0, None)}  # 0: IPC_RMID
    for kind, remove_one in remove.items():
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            remove_one(int(line.split()[1]))


def reset_between_kernels(layout: SandboxLayout) -> None:
    """What the zygote does before each fork and after each kernel: kill every other process,
    then empty the private folders (:func:`private_folders`, the handoff folder among them;
    recreating HOME's empty config folders) and the POSIX message queues, and remove the System V
    IPC objects. Nothing a notebook leaves on disk, in memory or running reaches the next one."""
    kill_other_processes()
    mounts = _mount_points()
    for folder in [*private_folders(layout), MQUEUE]:
        _empty_folder(folder, mounts)
    remove_ipc_objects()
    make_home_folders()


def make_home_folders() -> None:
    """The empty IPython, Jupyter and matplotlib folders in the private HOME."""
    for folder in HOME_FOLDERS.values():
        os.makedirs(f"{HOME}/{folder}", exist_ok=True)


def make_undumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``: a kernel (same uid, same PID namespace) can then neither
    ptrace this process nor read or write its ``/proc/<pid>/mem``; its kernels inherit it."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _lower_limit(kind: int, value: int) -> None:
    import resource

    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def apply_kernel_limits(memory_mb: int | None) -> None:
    """In a forked kernel, before student code: address space (``memory_mb``), largest file
    (Python ignores SIGXFSZ, so a write past it raises ``OSError: File too large``), open files,
    no core files, and a process count (enforced by Linux only when the grader is not root)."""
    import resource

    if memory_mb:
        _lower_limit(resource.RLIMIT_AS, memory_mb << 20)
    _lower_limit(resource.RLIMIT_FSIZE, LARGEST_FILE_BYTES)
    _lower_limit(resource.RLIMIT_NOFILE, OPEN_FILES)
    _lower_limit(resource.RLIMIT_CORE, 0)
    _lower_limit(resource.RLIMIT_NPROC, PROCESSES)
    _lower_limit(resource.RLIMIT_MSGQUEUE, MQUEUE_BYTES)


def kernel_environment(requested: dict) -> dict:
    """The environment of a forked kernel: the allow-listed part of the launcher's."""
    return sandbox_environment(requested)
