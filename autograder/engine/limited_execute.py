"""nbgrader's Execute with a per-cell limit in CPU time, and a timeout that costs only its cell.

The limit. nbgrader's ``Execute.timeout`` is wall-clock time: on a busy machine a correct cell
that needs 30 s of computation can take minutes to get it, and fails. Here each cell may use
``cell_cpu_seconds`` of CPU time, counted on the kernel's process tree (``cpu_clock``: the
kernel's launcher and the zygote it is forked from, bwrap around that in a sandbox), sampled
every ``cpu_clock.POLL_SECONDS`` while nbclient waits for the cell's reply
(:meth:`LimitedExecute._async_poll_for_reply` runs nbclient's own waiting as a task beside the
clock). ``Execute.timeout`` stays, several times larger (``limits.CELL_WALL_FACTOR``), as the
backstop for cells that wait without computing.

Past either limit the cell gets what nbgrader gives a timed-out cell, a ``CellTimeoutError``
(saying which limit, e.g. "used more than 120 s of CPU time"), and scores 0. The kernel is
interrupted; if it ignores the interrupt (a loop that catches ``KeyboardInterrupt``) for
``interrupt_grace_seconds``, it is restarted.

A restart loses the kernel's state, which the cells after the lost one need (in 04 an ungraded
plotting cell that ran out of time used to cost every later cell a ``NameError``). So before the
next cell runs, every cell that ran before it is run again on the fresh kernel, in order, each
under the same limits (test cells without their hidden lines: those only check). The timed-out
cell itself is not run again. If the replay cannot bring the state back (a cell that had run
fails now, or runs out of time), the replay stops there; every later cell that fails then carries
a second error saying that the kernel was restarted after which cell, and why its state may be
missing: never a bare ``NameError`` of correct code.
"""

from __future__ import annotations

import asyncio
import copy
import time
from queue import Empty

import nbformat
from jupyter_core.utils import ensure_async
from nbclient.exceptions import CellTimeoutError
from nbgrader.preprocessors import Execute
from traitlets import Integer

from autograder.engine import check_kernel
from autograder.engine.cpu_clock import POLL_SECONDS, ProcessTreeClock, launcher_pid

TIMEOUT_ERROR = "CellTimeoutError"
RESTART_ERROR = "KernelRestarted"


def cell_label(cell, index: int) -> str:
    """How the feedback names a cell: its nbgrader id, else its position (1-based)."""
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"`{grade_id}`" if grade_id else f"number {index + 1}"


def timeout_reply(what: str) -> dict:
    """The execute_reply a cell stopped by a limit gets (nbgrader's ``error_on_timeout`` form):
    nbgrader's ``on_cell_executed`` turns it into the cell's ``CellTimeoutError`` output."""
    message = f"this cell {what}: it was interrupted and scores 0"
    return {"content": {"status": "error", "ename": TIMEOUT_ERROR, "evalue": message,
                        "traceback": [f"\x1b[0;31m{TIMEOUT_ERROR}\x1b[0m: {message}"]}}


class LimitedExecute(Execute):
    """nbgrader's Execute with a CPU-time limit per cell and a replay after a kernel restart
    (see the module's docstring)."""

    interrupt_grace_seconds = 10
    cell_cpu_seconds = Integer(120, help="CPU seconds a cell may use (its kernel's process tree); 0: no CPU "
                               "limit. Execute.timeout (wall clock) is the backstop.").tag(config=True)
    zygote_pid = Integer(0, help="pid of the process the kernels are forked from (the zygote, or bwrap around "
                         "it): its process tree is the kernel's, with the launcher's. 0: the launcher is the "
                         "kernel").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._ran: list[tuple[int, str, bool]] = []  # (index, source as run, whether it failed)
        self._restart: dict | None = None  # after a restart: the lost cell, replay pending or done
        self._cell_stopped = False  # the cell now running was stopped by a limit
        self._replaying = False
        self._index = 0
        return super().preprocess(nb, resources, km)

    # -- the limits -------------------------------------------------------------------------

    def _kernel_roots(self) -> list[int]:
        """The kernel's process tree: its launcher and the zygote (whichever exist)."""
        return [pid for pid in (launcher_pid(self.km), self.zygote_pid) if pid]

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
        """nbclient's wait for the cell's reply (with its wall-clock ``timeout``), run as a task
        while the kernel's CPU clock is sampled; past ``cell_cpu_seconds`` the task is cancelled
        and the cell stopped (:meth:`_stop_cell`)."""
        self._cell_stopped = False
        waiting = asyncio.ensure_future(super()._async_poll_for_reply(
            msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive))
        if not self.cell_cpu_seconds:
            return await waiting
        clock = ProcessTreeClock(self._kernel_roots)
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=POLL_SECONDS)
                if not waiting.done() and not self._cell_stopped and clock.seconds() > self.cell_cpu_seconds:
                    waiting.cancel()
                    await asyncio.gather(waiting, return_exceptions=True)
                    return await self._reply_over_cpu(msg_id, cell, task_poll_output_msg, task_poll_kernel_alive)
            return waiting.result()
        except asyncio.CancelledError:  # nbclient's liveness poller cancels this when the kernel dies
            waiting.cancel()
            raise

    async def _reply_over_cpu(self, msg_id, cell, task_poll_output_msg, task_poll_kernel_alive) -> dict:
        """What nbclient does after its own timeout, for the CPU limit: stop the cell, wait
        (``iopub_timeout``) for the outputs it sent before, return the timeout reply."""
        task_poll_kernel_alive.cancel()
        await self._async_check_alive()
        reply = await self._stop_cell(cell, f"used more than {self.cell_cpu_seconds} s of CPU time",
                                      self.cell_cpu_seconds)
        reply["parent_header"] = {"msg_id": msg_id}
        try:
            await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
        except (asyncio.TimeoutError, Empty):
            if self.raise_on_iopub_timeout:
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "Timeout waiting for IOPub output", self.iopub_timeout, cell) from None
            self.log.warning("Timeout waiting for IOPub output")
        return reply

    async def _async_handle_timeout(self, timeout, cell=None):
        """nbclient's wall-clock timeout: the backstop behind the CPU limit."""
        return await self._stop_cell(cell, f"did not finish within {timeout} s (wall clock; its CPU limit is "
                                           f"{self.cell_cpu_seconds} s)", timeout)

    async def _stop_cell(self, cell, what: str, limit: int) -> dict:
        """Interrupt the kernel; restart it if it ignores that (the cells after then run on a
        fresh kernel, after a replay); return the cell's timeout reply saying ``what``."""
        self._cell_stopped = True
        self.log.error("A cell %s: interrupting the kernel", what)
        if not self.interrupt_on_timeout:
            raise CellTimeoutError.error_from_timeout_and_cell(f"Cell {what}", limit, cell)
        await ensure_async(self.km.interrupt_kernel())
        if not await self._interrupted_cell_answered():
            self.log.error("The kernel ignored the interrupt: restarting it")
            await ensure_async(self.km.restart_kernel(now=True))
            await self._wait_for_kernel_info()
            if not self._replaying:  # (a replay that loses its kernel again just stops: _replay)
                self._restart = {"cell": cell_label(self.nb.cells[self._index], self._index), "replayed": False}
        return timeout_reply(what)

    async def _wait_for_kernel_info(self) -> None:
        """Wait until the restarted kernel answers on the shell channel. (The client's own
        ``wait_for_ready`` also waits for an IOPub message, which nbclient's output poller,
        still running for the timed-out cell, may take first: it can wait forever.)"""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            request = self.kc.kernel_info()
            try:
                while True:
                    message = await ensure_async(self.kc.shell_channel.get_msg(timeout=1))
                    if message.get("parent_header", {}).get("msg_id") == request:
                        return
            except Empty:
                continue

    async def _interrupted_cell_answered(self) -> bool:
        """Whether the interrupted cell's execute_reply arrives within the grace period."""
        deadline = time.monotonic() + self.interrupt_grace_seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if message.get("msg_type") == "execute_reply":
                return True
        return False

    # -- after a restart --------------------------------------------------------------------

    def preprocess_cell(self, cell, resources, index):
        self._cell_stopped = False
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        if self._restart is not None and not self._restart["replayed"]:
            self._replay()
        self._index = index
        source = check_kernel.split_hidden(cell.source)[0]  # what the kernel needs again: no checks
        cell, resources = super().preprocess_cell(cell, resources, index)
        if self._cell_stopped:
            return cell, resources
        self._ran.append((index, source, _failed(cell)))
        if self._restart is not None and _failed(cell):
            message = f"{_first_error(cell)} -- but note: {self._restart['note']}"
            cell.outputs.append(nbformat.v4.new_output("error", ename=RESTART_ERROR, evalue=message,
                                                       traceback=[f"{RESTART_ERROR}: {message}"]))
        return cell, resources

    def _replay(self) -> None:
        """Run every cell that ran before the lost one again, on the fresh kernel, in order;
        stop at the first that ran then and fails now. Its outputs are dropped (a copy of each
        cell runs), and so are the display ids it makes."""
        restart = self._restart
        restart["replayed"] = True
        displays = copy.deepcopy(self._display_id_map)
        failed_at = None
        self._replaying = True
        try:
            for index, source, failed_before in self._ran:
                original = self.nb.cells[index]
                rerun = copy.deepcopy(original)
                rerun.source = source
                self._index, self._cell_stopped = index, False
                try:
                    rerun = self.execute_cell(rerun, index, store_history=True)
                finally:
                    self.nb.cells[index] = original
                if self._cell_stopped or (_failed(rerun) and not failed_before):
                    failed_at = (cell_label(original, index), _first_error(rerun))
                    break
        finally:
            self._replaying = False
            self._display_id_map = displays
        if failed_at is None:
            restart["note"] = (f"the kernel was restarted after cell {restart['cell']} ran out of time; the cells "
                               f"before it were run again, so only what {restart['cell']} itself would have "
                               "defined is missing")
        else:
            restart["note"] = (f"the kernel was restarted after cell {restart['cell']} ran out of time, and running "
                               f"the cells before it again failed at cell {failed_at[0]} ({failed_at[1]}): what "
                               "those cells define is missing here, so this error may not be this cell's fault")
        self._cell_stopped = False


def _failed(cell) -> bool:
    return any(output.get("output_type") == "error" for output in cell.get("outputs", []))


def _first_error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:200]
    return "no error"
