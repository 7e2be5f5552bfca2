"""Kernels from a zygote, as grading starts them (tests of ``prewarmed_kernel`` and ``sandbox``)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

from jupyter_client.manager import KernelManager

from autograder.engine import prewarmed_kernel, sandbox
from autograder.authoring.source_format import REPO_ROOT

#: What the zygote fixtures set in os.environ (restored afterwards).
ZYGOTE_VARIABLES = ("JUPYTER_PATH", "PYTHONPATH", prewarmed_kernel.ZYGOTE_ENV, sandbox.SANDBOX_ENV)


@contextmanager
def restored_environment(names=ZYGOTE_VARIABLES):
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def sandboxed_zygote(root: Path, memory_mb: int = 8192, preimport: bool = True):
    """A zygote in the bubblewrap sandbox, as the grading worker starts it (a copy of the kernel's
    code as the only code of the kit on PYTHONPATH, the launchers told the layout); yields
    ``(Popen of bwrap, layout, code)``."""
    with restored_environment():
        code = sandbox.kernel_code_copy(root / "code", REPO_ROOT)  # as the worker makes it
        os.environ["PYTHONPATH"] = str(code)
        layout = sandbox.make_layout(memory_mb, root=root / "sb")
        process = prewarmed_kernel.activate(root / "runtime", sandbox_layout=layout, code=code, preimport=preimport)
        try:
            yield process, layout, code
        finally:
            process.kill()
            process.wait()


class Kernel:
    """A started kernel and a blocking client; ``run(code)`` returns (stdout text, error name, outputs).

    ``layout``: the sandbox the zygote runs in: ipc transport in its handoff folder, the
    connection file in its read-only connections folder (as the worker configures nbgrader)."""

    def __init__(self, cwd=None, env=None, layout: sandbox.SandboxLayout | None = None):
        options = {}
        if layout is not None:
            options = {"transport": "ipc", "ip": layout.ipc_prefix,
                       "connection_file": str(Path(layout.connections) / f"kernel-{uuid.uuid4()}.json")}
        self.manager = KernelManager(kernel_name=prewarmed_kernel.KERNEL_NAME, **options)
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
