"""A real Jupyter server with formgrader on a course folder, as an instructor starts it there
(``cd COURSE && jupyter lab``: the course's ``jupyter_server_config.json`` enables formgrader), in
the kit's installed environment (:mod:`tests.kit_environment`), on 127.0.0.1, a free port, with a
token; its Jupyter folders are empty ones under a folder of the test's."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from tests.kit_environment import installed_kit_env

STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def formgrader_on(course_root: Path, folder: Path):
    """Yield ``SimpleNamespace(session, base, log)`` once ``/formgrader/api/status`` answers:
    ``session`` (requests) sends the token, ``base`` is the server's address, ``log`` the file
    holding the server's output. The server is stopped after the block."""
    import requests

    config = folder / "jupyter_config"  # empty: formgrader is enabled by the course's own config file
    config.mkdir(parents=True, exist_ok=True)
    token, port = "formgrader-test-token", free_port()
    env = installed_kit_env(JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(folder / "data"),
                            JUPYTER_RUNTIME_DIR=str(folder / "runtime"), JUPYTER_PLATFORM_DIRS="1")
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--ServerApp.ip=127.0.0.1",
                                   f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                                   "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
                                   f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course_root}"],
                                  cwd=course_root, env=env, stdout=log, stderr=subprocess.STDOUT)
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    if session.get(f"{base}/formgrader/api/status", timeout=5).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
            yield SimpleNamespace(session=session, base=base, log=log_path)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
