"""Process helpers for the tests (Linux /proc)."""


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` as this PID namespace sees them (those inside a sandbox's own
    PID namespace included: /proc shows them with their outside pids)."""
    from autograder.engine.cpu_clock import descendants as listed

    return set(listed(pid))


class ProcessRecorder:
    """Records, in a background thread, every process below ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, interval: float = 0.2):
        import threading

        self.pid, self.interval, self.seen = pid, interval, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.seen |= descendants(self.pid)
            self._stop.wait(self.interval)

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join()
        return self.seen


def outside_pid(inner_pid: int, below: int) -> int | None:
    """The pid (as this namespace sees it) of the process below ``below`` whose pid in its own
    PID namespace is ``inner_pid`` (the last NSpid field), or None."""
    for pid in descendants(below):
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("NSpid:") and int(line.split()[-1]) == inner_pid:
                        return pid
        except (OSError, ValueError):
            continue
    return None


def burning_children(count: int) -> str:
    """Notebook code that starts ``count`` child processes burning CPU without end (the list
    ``burners``): with many of them a kernel's process tree reaches a CPU limit fast, however
    busy the machine is (it gets a share of the cores for each)."""
    return ("import subprocess, sys\n"
            f"burners = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range({count})]\n")
