"""What one student's notebook may use while it is graded: CPU time first, the wall clock behind it.

The cell and notebook limits count CPU seconds (``cpu_clock``: the kernel's process tree for a
cell, the worker's for a notebook), so a notebook gets the same grade on a quiet machine and on
one whose cores are all busy. Each has a wall-clock backstop several times larger, for what
uses no CPU while it waits (``time.sleep``, a blocked read): ``cell_seconds * CELL_WALL_FACTOR``
and ``notebook_seconds * NOTEBOOK_WALL_FACTOR``. Under load a cell needs more wall time for the
same CPU time: with the factor 5, a cell that uses its whole CPU limit still finishes where it
gets a fifth of a core (about five busy processes per core), one that uses a tenth of it where
it gets a fiftieth.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Wall-clock backstop of a cell: this many times its CPU limit.
CELL_WALL_FACTOR = 5
#: Wall-clock backstop of a notebook: this many times its CPU limit.
NOTEBOOK_WALL_FACTOR = 4


@dataclass
class Limits:
    """The limits of one graded notebook.

    cell_seconds: CPU seconds per cell, its kernel's process tree (then the kernel is interrupted,
    restarted if it ignores that, the cell scores 0 and the cells after it still run);
    notebook_seconds: CPU seconds of the whole notebook, kernel start, hidden checks and nbgrader
    included (then nbgrader and the kernel are killed: this catches a loop that ignores
    Ctrl-C in a way a restart cannot); memory_mb: address space of nbgrader and its kernel
    (torch alone maps about 4 GB; a larger allocation fails inside the student's cell).
    """

    cell_seconds: int = 120
    notebook_seconds: int = 1200
    memory_mb: int = 8192

    @property
    def cell_wall_seconds(self) -> int:
        return self.cell_seconds * CELL_WALL_FACTOR

    @property
    def notebook_wall_seconds(self) -> int:
        return self.notebook_seconds * NOTEBOOK_WALL_FACTOR
