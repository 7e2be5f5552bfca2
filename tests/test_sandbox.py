"""What a notebook's code cannot do in the bubblewrap sandbox (``autograder.engine.sandbox``): each test
runs attack code in real sandboxed kernels, forked from one zygote as grading forks them."""

import errno
import json
import os
import socket
from functools import partial
from pathlib import Path

import pytest

from autograder import cli
from autograder.engine import sandbox
from autograder.authoring.source_format import REPO_ROOT
from student_src import assets
from tests.kernels import Kernel as AnyKernel
from tests.kernels import sandboxed_zygote
from tests.processes import alive, outside_pid


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """Folders of the grader that a kernel must not see: a course with a gradebook, submissions
    and an output folder."""
    root = tmp_path_factory.mktemp("grader")
    folders = {name: root / name for name in ("course", "submissions", "out")}
    for folder in folders.values():
        folder.mkdir()
    (folders["course"] / "gradebook.db").write_text("grades")
    (folders["submissions"] / "someone").mkdir()
    return folders


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    with sandboxed_zygote(tmp_path_factory.mktemp("zygote")) as (process, layout, code):
        yield process, layout, code


@pytest.fixture(scope="module")
def Kernel(zygote):
    return partial(AnyKernel, layout=zygote[1])


def _json(kernel, code):
    """Run ``code`` (which prints one JSON value) and return the value."""
    text, error, outputs = kernel.run(code)
    assert error is None, outputs
    return json.loads(text)


def test_no_network_not_even_the_graders_loopback(Kernel):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    kernel = Kernel()
    try:
        result = _json(kernel, f"import json, socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                               "    print(json.dumps('connected'))\nexcept OSError as error:\n"
                               "    print(json.dumps(error.errno))\n")
        interfaces = _json(kernel, "import json, socket\nprint(json.dumps([name for _, name in socket.if_nameindex()]))")
    finally:
        kernel.close()
        listener.close()
    assert result == errno.ECONNREFUSED  # nothing listens on the sandbox's own loopback
    assert interfaces == ["lo"]


def test_the_graders_files_are_not_visible(Kernel, outside, zygote):
    paths = [str(REPO_ROOT / "autograder"), str(REPO_ROOT / "solutions"), str(REPO_ROOT / ".git"),
             str(outside["course"]), str(outside["course"] / "gradebook.db"), str(outside["submissions"]),
             str(outside["out"]), str(Path(zygote[1].root) / "code"), "/etc/shadow", "/etc/hostname"]
    kernel = Kernel()
    try:
        seen = _json(kernel, f"import json, os\nprint(json.dumps({{p: os.path.exists(p) for p in {paths!r}}}))")
        checkout = _json(kernel, f"import json, os\nprint(json.dumps(os.listdir({str(REPO_ROOT)!r}) "
                                 f"if os.path.isdir({str(REPO_ROOT)!r}) else []))")
        ipython = _json(kernel, "import json, os\nprint(json.dumps([os.environ['HOME'], os.listdir(os.environ['HOME'])]))")
    finally:
        kernel.close()
    assert not any(seen.values()), seen
    # At most the data folder (bound read-only: <checkout>/data by default) and the virtual
    # environment, where they live in the checkout; none of the kit's code.
    assert set(checkout) <= {"data", ".venv"}
    assert ipython[0] == sandbox.HOME and ".ipython" in ipython[1]


def test_only_the_kernels_code_is_importable(Kernel):
    """No reference solutions and no hidden checks in the kernel: they run on the trusted side."""
    kernel = Kernel()
    try:
        found = _json(kernel, "import importlib, json\nfound = {}\n"
                              "for name in ('solutions', 'solutions.hooks', 'autograder.engine.checks', 'autograder.engine.checks.a01_hooks', "
                              "'autograder.engine.check_server', 'student_src.grading_client', 'student_src.probe_models'):\n"
                              "    try:\n        importlib.import_module(name)\n        found[name] = True\n"
                              "    except ImportError:\n        found[name] = False\n"
                              "print(json.dumps(found))")
    finally:
        kernel.close()
    assert found == {"solutions": False, "solutions.hooks": False, "autograder.engine.checks": False,
                     "autograder.engine.checks.a01_hooks": False, "autograder.engine.check_server": False,
                     "student_src.grading_client": True, "student_src.probe_models": True}


def test_the_code_and_the_root_are_read_only_and_the_user_is_unprivileged(Kernel, zygote):
    code = zygote[2]
    kernel = Kernel()
    try:
        result = _json(kernel, "import json, os\nresult = {'uid': os.getuid(), 'gid': os.getgid()}\n"
                               f"for path in [{str(code / 'student_src' / 'planted.py')!r}, '/planted', "
                               f"{str(code / 'student_src' / 'checks.py')!r}, '/usr/planted']:\n"
                               "    try:\n        open(path, 'a').close()\n        result[path] = 'written'\n"
                               "    except OSError as error:\n        result[path] = error.errno\n"
                               "print(json.dumps(result))")
    finally:
        kernel.close()
    assert (result.pop("uid"), result.pop("gid")) == (1000, 1000)
    assert all(value in (errno.EROFS, errno.EACCES, errno.EPERM) for value in result.values()), result


def test_tmp_home_and_startup_files_do_not_reach_the_next_kernel(Kernel):
    first = Kernel()
    try:
        _json(first, "import json, os, pathlib\npathlib.Path('/tmp/left-behind').write_text('x')\n"
                     "home = pathlib.Path(os.environ['HOME'])\n(home / 'left-behind').write_text('x')\n"
                     "startup = pathlib.Path(os.environ['IPYTHONDIR']) / 'profile_default' / 'startup'\n"
                     "startup.mkdir(parents=True, exist_ok=True)\n"
                     "(startup / '00-planted.py').write_text('PLANTED = True')\n"
                     "pathlib.Path('../other-job-file').write_text('x')\nprint(json.dumps(True))")
    finally:
        first.close()
    second = Kernel()
    try:
        result = _json(second, "import json, os\nprint(json.dumps([os.path.exists('/tmp/left-behind'), "
                               "os.path.exists(os.path.expanduser('~/left-behind')), 'PLANTED' in globals(), "
                               "os.listdir('..')]))")
    finally:
        second.close()
    tmp_file, home_file, planted, jobs = result
    assert (tmp_file, home_file, planted) == (False, False, False)
    assert len(jobs) == 1  # only this kernel's own working folder


def test_background_processes_die_before_the_next_kernel_and_nothing_outside_is_visible(Kernel, zygote):
    first = Kernel()
    try:
        inner = _json(first, "import json, os, subprocess\n"
                             "detached = subprocess.Popen(['sleep', '1000'], start_new_session=True).pid\n"
                             "if os.fork() == 0:\n    if os.fork() == 0:\n        os.setsid()\n"
                             "        os.execvp('sleep', ['sleep', '999'])\n    os._exit(0)\n"
                             "import time; time.sleep(0.5)\n"
                             "print(json.dumps([detached] + [int(p) for p in os.listdir('/proc') if p.isdigit() "
                             "and open(f'/proc/{p}/comm').read().strip() == 'sleep']))")
        leftovers = {outside_pid(pid, below=zygote[0].pid) for pid in inner}
    finally:
        first.close()
    assert None not in leftovers and len(leftovers) == 2
    second = Kernel()
    try:
        seen = _json(second, "import json, os\nprint(json.dumps([open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ') "
                             "for p in os.listdir('/proc') if p.isdigit()]))")
    finally:
        second.close()
    assert not any(alive(pid) for pid in leftovers)
    assert not any("sleep" in line for line in seen)
    # Only bwrap, the zygote and this kernel (a fork of it): nothing of the machine outside.
    assert len(seen) <= 4 and all(line.startswith("bwrap ") or "prewarmed_kernel.py" in line for line in seen), seen


def test_the_zygote_can_be_neither_read_nor_traced(Kernel):
    kernel = Kernel()
    try:
        result = _json(kernel, "import ctypes, json, os\nzygote = os.getppid()\nresult = {}\n"
                               "try:\n    open(f'/proc/{zygote}/mem', 'rb').read(1)\n    result['mem'] = 'read'\n"
                               "except OSError as error:\n    result['mem'] = error.errno\n"
                               "libc = ctypes.CDLL(None, use_errno=True)\n"
                               "result['ptrace'] = libc.ptrace(16, zygote, 0, 0), ctypes.get_errno()\n"  # PTRACE_ATTACH
                               "result['comm'] = open(f'/proc/{zygote}/comm').read().strip()\n"
                               "print(json.dumps(result))")
    finally:
        kernel.close()
    assert result["comm"].startswith("python")
    assert result["mem"] in (errno.EACCES, errno.EPERM)
    assert result["ptrace"] == [-1, errno.EPERM]


def test_a_huge_file_hits_the_file_size_limit(Kernel):
    kernel = Kernel()
    try:
        result = _json(kernel, "import json\ntry:\n    with open('huge', 'wb') as file:\n"
                               f"        file.seek({sandbox.LARGEST_FILE_BYTES})\n        file.write(b'x')\n"
                               "        file.flush()\n    print(json.dumps('written'))\n"
                               "except OSError as error:\n    print(json.dumps(error.errno))")
    finally:
        kernel.close()
    assert result == errno.EFBIG


def test_grade_refuses_to_run_without_bwrap(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    monkeypatch.setenv(assets.STANDIN_ENV, "1")  # as --standin does, restored afterwards
    assert cli.main(["grade", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert "bubblewrap" in message and "apt install bubblewrap" in message and "--sandbox none" in message


def test_grade_with_sandbox_none_warns_once(tmp_path, monkeypatch, capsys):
    from autograder.engine import grade

    calls = []
    monkeypatch.setenv("PATH", str(tmp_path))  # bwrap is not needed then
    monkeypatch.setattr(grade, "grade", lambda *args, **kwargs: calls.append(kwargs) or [])
    monkeypatch.setenv(assets.STANDIN_ENV, "1")  # as --standin does, restored afterwards
    assert cli.main(["grade", str(tmp_path), "--sandbox", "none", "--out", str(tmp_path / "out")]) == 0
    assert calls and calls[0]["sandbox"] == "none"
    assert capsys.readouterr().err.count(sandbox.NONE_WARNING) == 1


def test_the_check_socket_folder_is_bound_and_its_variable_passed(tmp_path):
    layout = sandbox.make_layout(root=tmp_path / "sb")
    socket_path = str(tmp_path / "checks" / "s.sock")
    command = sandbox.bwrap_command(["true"], layout, tmp_path / "code", {sandbox.CHECK_SOCKET_ENV: socket_path,
                                                                           "SECRET_TOKEN": "x"})
    options = command[:command.index("--")]
    folder = str(tmp_path / "checks")
    assert any(options[i:i + 3] == ["--ro-bind", folder, folder] for i in range(len(options)))
    assert any(options[i:i + 3] == ["--setenv", sandbox.CHECK_SOCKET_ENV, socket_path] for i in range(len(options)))
    assert "SECRET_TOKEN" not in options and "--clearenv" in options


def test_the_private_tmp_and_home_come_before_every_bind_under_them(tmp_path):
    """A venv, checkout or data folder under /tmp (a clone in /tmp, pytest's folders) must stay
    visible: bwrap applies its options in order, so the tmpfs must come first."""
    layout = sandbox.make_layout(root=tmp_path / "sb")
    command = sandbox.bwrap_command(["true"], layout, tmp_path / "code", {})
    options = command[:command.index("--")]
    tmpfs = max(i for i, option in enumerate(options) if option == "--tmpfs")
    binds = [i for i, option in enumerate(options) if option in ("--ro-bind", "--bind", "--ro-bind-try")]
    assert all(i > tmpfs for i in binds), options
