"""Kernels forked from the pre-warmed zygote behave like ordinary kernels, and share nothing."""

import os
import signal
import sys
import time

import pytest
from jupyter_client.manager import KernelManager

from autograder import prewarmed_kernel
from tests.processes import alive


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    """A running zygote and the kernelspec pointing at it (environment variables set, then restored)."""
    root = tmp_path_factory.mktemp("zygote")
    prewarmed_kernel.install_kernelspec(root / "jupyter")
    address = str(root / "z.sock")
    saved = {name: os.environ.get(name) for name in ("JUPYTER_PATH", prewarmed_kernel.ZYGOTE_ENV)}
    os.environ["JUPYTER_PATH"] = str(root / "jupyter")
    os.environ[prewarmed_kernel.ZYGOTE_ENV] = address
    process = prewarmed_kernel.start_zygote(address)
    try:
        yield process
    finally:
        process.kill()
        process.wait()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Kernel:
    """A started kernel and a blocking client; ``run(code)`` returns (stdout text, error name, outputs)."""

    def __init__(self, cwd=None, env=None):
        self.manager = KernelManager(kernel_name=prewarmed_kernel.KERNEL_NAME)
        self.manager.start_kernel(cwd=cwd, env={**os.environ, **(env or {})})
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code, timeout=60):
        outputs = []
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
        text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        return text, reply["content"].get("ename"), outputs

    def close(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(zygote):
    started = Kernel()
    yield started
    started.close()


def test_the_kernel_is_pre_warmed_and_runs_code(kernel):
    text, error, _ = kernel.run("import sys\nprint('torch' in sys.modules, 'pytorch_grad_cam' in sys.modules)\n"
                                "import torch\nprint(torch.ones(2, 3).sum().item())")
    assert error is None
    assert text.split() == ["True", "True", "6.0"]


def test_kernels_share_no_state(zygote):
    first, second = Kernel(), Kernel()
    try:
        first.run("import torch, os\ntorch.allclose = lambda *a, **k: True\nsecret = 42\nprint(os.getpid())")
        text, error, _ = first.run("print(torch.allclose(torch.zeros(1), torch.ones(1)), secret)")
        assert (text.strip(), error) == ("True 42", None)
        text, error, _ = second.run("import torch\nprint(torch.allclose(torch.zeros(1), torch.ones(1)))")
        assert (text.strip(), error) == ("False", None)
        assert second.run("secret")[1] == "NameError"
        pids = first.run("import os\nprint(os.getpid())")[0], second.run("import os\nprint(os.getpid())")[0]
        assert pids[0] != pids[1] and str(os.getpid()) not in pids
    finally:
        first.close()
        second.close()


def test_the_kernel_gets_the_launchers_environment_and_folder(zygote, tmp_path):
    started = Kernel(cwd=str(tmp_path), env={"XAI_TEST_VALUE": "from-the-launcher", "NBGRADER_EXECUTION": "autograde"})
    try:
        text, error, _ = started.run("import os\nprint(os.environ['XAI_TEST_VALUE'], os.environ['NBGRADER_EXECUTION'])\n"
                                     "print(os.getcwd())")
        assert error is None
        assert text.split() == ["from-the-launcher", "autograde", str(tmp_path)]
    finally:
        started.close()


def test_an_interrupt_stops_the_running_cell(kernel, tmp_path):
    # Interrupt only once the cell is in its sleep (it writes a file just before): two seconds of
    # waiting were not always enough under load.
    running = tmp_path / "running"
    # stop_on_error=False: otherwise ipykernel 7 aborts the next request too when it races the
    # shell thread's end-of-abort message (seen 4 times in 8 under load), which is not the kernel dying.
    request = kernel.client.execute(f"import pathlib, time\npathlib.Path({str(running)!r}).touch()\ntime.sleep(60)",
                                    stop_on_error=False)
    deadline = time.monotonic() + 60
    while not running.exists():
        assert time.monotonic() < deadline, "the cell did not start within a minute"
        time.sleep(0.05)
    started = time.monotonic()
    kernel.manager.interrupt_kernel()
    reply = kernel.client.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != request:  # e.g. a late kernel_info_reply from wait_for_ready
        reply = kernel.client.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - started < 10
    text, error, _ = kernel.run("print(1 + 1)")
    assert (text.strip(), error) == ("2", None)  # the kernel lives on


def test_figures_use_the_inline_backend(kernel):
    _, error, outputs = kernel.run("import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()")
    assert error is None
    assert any("image/png" in m["content"].get("data", {}) for m in outputs if m["msg_type"] == "display_data")



def test_a_killed_launcher_takes_its_kernel_with_it(kernel):
    child = int(kernel.run("import os\nprint(os.getpid())")[0])
    launcher = kernel.manager.provisioner.process.pid
    assert child != launcher and alive(child)
    os.kill(launcher, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(child)


def test_without_a_zygote_the_launcher_is_an_ordinary_kernel(tmp_path, monkeypatch):
    prewarmed_kernel.install_kernelspec(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv(prewarmed_kernel.ZYGOTE_ENV, raising=False)
    started = Kernel()
    try:
        text, error, _ = started.run("import sys\nprint('torch' in sys.modules, sys.executable)")
        assert error is None
        assert text.split() == ["False", sys.executable]
    finally:
        started.close()


def test_sys_path_is_that_of_an_ordinary_kernel(zygote, tmp_path, monkeypatch):
    """Same working folder and PYTHONPATH: the forked kernel imports from exactly where a plain one
    would (the grader's hidden checks are found through PYTHONPATH)."""
    extra = tmp_path / "on_pythonpath"
    extra.mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(extra), os.environ.get("PYTHONPATH", "")])}
    show = "import sys\nprint(repr(sys.path))"
    forked = Kernel(cwd=str(tmp_path), env=env)
    try:
        forked_path = forked.run(show)[0].strip()
    finally:
        forked.close()
    monkeypatch.delenv(prewarmed_kernel.ZYGOTE_ENV)
    plain = Kernel(cwd=str(tmp_path), env=env)
    try:
        plain_path = plain.run(show)[0].strip()
    finally:
        plain.close()
    assert str(extra) in forked_path
    assert forked_path == plain_path
