"""Real services for the tests, each started in a temporary folder of its own and stopped after:
a PostgreSQL server (Debian's ``postgresql`` package) and a one-node SLURM cluster (``slurm-wlm``
and ``munge``). ``make install`` installs both packages.

PostgreSQL's ``initdb`` refuses to run as root: as root, the server runs as ``nobody`` (a folder
in ``/tmp`` that ``nobody`` owns), listening on a Unix socket in that folder only (no TCP port).
The SLURM daemons run as the tests' user (root in CI: slurmd starts the jobs as their owner), on
free TCP ports of this host, with their own munge key and socket.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

STARTUP_SECONDS = 60


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, or Debian's ``/usr/lib/postgresql/<version>/bin``."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent  # a link on PATH (/usr/local/bin/initdb) names the real folder
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    assert found, "PostgreSQL's server binaries are missing: `make install` installs the package postgresql"
    return Path(found[-1]).parent


def _unprivileged() -> dict:
    """``subprocess`` arguments that run a command as ``nobody`` when the tests run as root."""
    if os.getuid() != 0:
        return {}
    return {"user": "nobody", "group": "nogroup", "extra_groups": []}


@contextmanager
def postgres_server():
    """A PostgreSQL server of its own; yields ``.url(database)`` and ``.createdb(database)``."""
    home = Path(tempfile.mkdtemp(prefix="xai-pg-", dir="/tmp"))  # short: a socket path has 107 bytes
    as_user = _unprivileged()
    if as_user:
        nobody = pwd.getpwnam("nobody")
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
    bindir, data = postgres_bindir(), home / "data"
    env = dict(os.environ, HOME=str(home), LC_ALL="C.UTF-8")

    def run(*command, check=True):
        return subprocess.run([str(part) for part in command], cwd=home, env=env, capture_output=True, text=True,
                              timeout=STARTUP_SECONDS, check=check, **as_user)

    try:
        run(bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        run(bindir / "pg_ctl", "-D", data, "-l", home / "server.log", "-w", "-o",
            f"-k {home} -c listen_addresses='' -F", "start")

        def createdb(name: str) -> str:
            run(bindir / "createdb", "-h", home, "-U", "postgres", name)
            return url(name)

        def url(name: str) -> str:
            return f"postgresql://postgres@/{name}?host={home}"  # SQLAlchemy's default driver (psycopg)

        yield SimpleNamespace(url=url, createdb=createdb, home=home)
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


SLURM_CONF = """\
ClusterName=xaitest
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={home}/munge.socket
CredType=cred/munge
StateSaveLocation={home}/state
SlurmdSpoolDir={home}/spool
SlurmctldPidFile={home}/slurmctld.pid
SlurmdPidFile={home}/slurmd.pid
SlurmctldLogFile={home}/slurmctld.log
SlurmdLogFile={home}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _stop(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError, IndexError):
        pass


@contextmanager
def slurm_cluster():
    """munged, slurmctld and slurmd on this host; yields ``.env`` (``SLURM_CONF`` for sbatch) and ``.home``."""
    home = Path(tempfile.mkdtemp(prefix="xai-slurm-", dir="/tmp"))
    for folder in ("state", "spool"):
        (home / folder).mkdir()
    key = home / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = home / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname().split(".")[0], home=home, cpus=os.cpu_count(),
                                      user=pwd.getpwuid(os.getuid()).pw_name, controller_port=_free_port(),
                                      node_port=_free_port()))
    env = dict(os.environ, SLURM_CONF=str(conf))
    try:
        subprocess.run(["munged", f"--key-file={key}", f"--socket={home}/munge.socket", f"--pid-file={home}/munged.pid",
                        f"--log-file={home}/munged.log", f"--seed-file={home}/munge.seed", "--force"],
                       check=True, capture_output=True, timeout=STARTUP_SECONDS)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(conf)], env=env, check=True, capture_output=True, timeout=STARTUP_SECONDS)
        deadline = time.monotonic() + STARTUP_SECONDS
        while subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip() != "idle":
            assert time.monotonic() < deadline, f"the SLURM node never became idle:\n{logs(home)}"
            time.sleep(0.5)
        yield SimpleNamespace(env=env, home=home)
    finally:
        for daemon in ("slurmd", "slurmctld", "munged"):
            _stop(home / f"{daemon}.pid")
        time.sleep(1)
        shutil.rmtree(home, ignore_errors=True)


#: The states a SLURM job ends in.
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED")


def run_array(cluster, sbatch_arguments: list[str], tasks: int, timeout: float = 600) -> dict:
    """Submit a job array and wait for its ``tasks`` tasks to end: ``{task id: (state, exit code)}``.

    Polls ``scontrol`` twice a second (``sbatch --wait`` polls with growing sleeps: 30 s more here)."""
    submitted = subprocess.run(["sbatch", "--parsable", *sbatch_arguments], env=cluster.env, capture_output=True,
                               text=True, timeout=STARTUP_SECONDS)
    assert submitted.returncode == 0, submitted.stderr + logs(cluster.home)
    job = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + timeout
    while True:
        shown = subprocess.run(["scontrol", "-o", "show", "job", job], env=cluster.env, capture_output=True,
                               text=True).stdout
        found = {int(task): (state, code) for task, state, code in re.findall(
            r"ArrayTaskId=(\d+) .*?JobState=(\w+) .*?ExitCode=(\S+)", shown)}
        if len(found) == tasks and all(state in FINISHED for state, _ in found.values()):
            return found
        assert time.monotonic() < deadline, f"job {job} did not end:\n{shown}\n{logs(cluster.home)}"
        time.sleep(0.5)


def logs(home: Path) -> str:
    """The last lines of the SLURM daemons' logs (for a failing assertion's message)."""
    return "\n".join(f"--- {name}\n" + "\n".join((home / name).read_text(errors="replace").splitlines()[-20:])
                     for name in ("slurmctld.log", "slurmd.log") if (home / name).is_file())
