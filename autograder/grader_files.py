"""The grader's own files, as a notebook being graded must not be able to change them. Grader-only.

A notebook runs as the same user as the grader, so it *can* write files. What it could gain:
rewrite ``autograder/checks/*.py`` (or drop a ``.pyc`` beside them) so that the notebooks graded
after it pass, or edit the course's source notebooks that nbgrader restores locked cells from.
With ``grade --sandbox bwrap`` (the default, ``autograder.sandbox``) a kernel sees the copy
read-only and nothing else of the grader, so only the first defence is used; with ``--sandbox
none`` both are, used by ``grade``:

- :func:`private_code_copy`: each grading worker imports the grader code (``autograder``,
  ``solutions``, ``student_src``) from its own temporary copy, not from the kit's checkout;
- :class:`FileSnapshot`: the bytes of every file under some folders, taken before grading;
  :meth:`FileSnapshot.restore` puts back whatever changed (also removing added files such as a
  planted ``__pycache__/*.pyc``) and says what it was. ``grade`` calls it after every notebook:
  the notebook that changed something gets 0 with a message naming the files, and the next one
  starts from the original files again.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from autograder.source_format import REPO_ROOT

#: The packages a grading kernel imports from the grader's code folder: exactly what the
#: sandbox shows it (read-only), one constant in ``autograder.sandbox``.
CODE_PACKAGES = ("autograder", "solutions", "student_src")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "figures", "notebooks", "assignments", "templates")


def private_code_copy(target: Path) -> Path:
    """Copy the grader code a kernel imports (``CODE_PACKAGES``, without caches, figures or
    notebooks) into ``target``; put ``target`` first on the kernels' PYTHONPATH."""
    target.mkdir(parents=True, exist_ok=True)
    for package in CODE_PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=_IGNORED)
    return target


RUNTIME_FOLDERS = {"IPYTHONDIR": "ipython", "JUPYTER_CONFIG_DIR": "jupyter_config", "JUPYTER_DATA_DIR": "jupyter_data"}


def worker_runtime(root: Path, code: Path) -> Path:
    """Empty IPython and Jupyter folders for one grading worker, plus the pre-warmed kernelspec in
    ``root/kernels`` (its launcher run from the worker's private ``code`` copy). A notebook that
    plants an IPython start-up file or a kernelspec in them (to run code before the grader's
    guard in the next kernel) is caught by the snapshot."""
    from IPython.core.profiledir import ProfileDir

    from autograder import prewarmed_kernel

    for folder in RUNTIME_FOLDERS.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
    # What a kernel would create there itself, so that only a notebook's own additions show.
    ProfileDir.create_profile_dir_by_name(str(root / "ipython"), "default").check_dirs()
    prewarmed_kernel.install_kernelspec(root / "kernels" / "jupyter", script=code / "autograder" / "prewarmed_kernel.py")
    return root


def runtime_env(root: Path) -> dict:
    """Environment variables that point IPython and Jupyter at :func:`worker_runtime`'s folders."""
    return {variable: str(root / folder) for variable, folder in RUNTIME_FOLDERS.items()}


def _is_cache(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


class FileSnapshot:
    """The exact contents of every file under ``roots`` (folders or single files).

    ``labels``: ``{root: name}`` for messages (default: the root's own name; ``""`` for none).
    ``patterns``: ``{root: (glob, ...)}`` to watch only some files of a folder (``*.pth`` in
    site-packages).
    ``skip_caches``: leave ``__pycache__`` alone (for the kit's checkout, where Python itself
    writes bytecode while grading runs); grading folders are used with bytecode writing off, so
    there any ``.pyc`` is somebody's doing.
    """

    def __init__(self, roots, skip_caches: bool = False, labels: dict | None = None, patterns: dict | None = None):
        self.roots = [Path(root) for root in roots]
        self.skip_caches = skip_caches
        # How a root's files are named in messages: "<label>/<path inside the root>".
        self.labels = {root: root.name for root in self.roots} | {Path(k): v for k, v in (labels or {}).items()}
        # {folder: (glob, ...)}: watch only the files of that folder matching a glob (not recursive).
        self.patterns = {Path(k): v for k, v in (patterns or {}).items()}
        self.contents: dict[Path, bytes] = {}
        for root in self.roots:
            self.contents.update(self._files(root))

    def _paths(self, root: Path):
        if root in self.patterns:
            return sorted({path for pattern in self.patterns[root] for path in root.glob(pattern)})
        return sorted(root.rglob("*"))

    def _files(self, root: Path) -> dict[Path, bytes]:
        if root.is_file():
            return {root: root.read_bytes()}
        return {path: path.read_bytes() for path in self._paths(root)
                if path.is_file() and not (self.skip_caches and _is_cache(path))}

    def changes(self) -> list[str]:
        """Files changed, deleted or added since the snapshot (paths relative to their root)."""
        current: dict[Path, bytes] = {}
        for root in self.roots:
            if root.exists():
                current.update(self._files(root))
        touched = [path for path, data in self.contents.items() if current.get(path) != data]
        touched += [path for path in current if path not in self.contents]
        return sorted(self._name(path) for path in touched)

    def restore(self) -> list[str]:
        """Put every file back as it was (remove added ones); return what had changed."""
        changed = self.changes()
        if not changed:
            return []
        for root in self.roots:
            if root.is_dir():
                for path in reversed(self._paths(root)):
                    if self.skip_caches and _is_cache(path):
                        continue
                    if path.is_symlink() or (path.is_file() and path not in self.contents):
                        path.unlink()
                    elif path.is_dir() and not any(path.iterdir()) and not any(
                            known.is_relative_to(path) for known in self.contents):
                        path.rmdir()
        for path, data in self.contents.items():
            if path.is_symlink():
                path.unlink()
            elif path.is_dir():  # a folder planted where a file was
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)
        return changed

    def _name(self, path: Path) -> str:
        for root in self.roots:
            if path == root:
                return self.labels[root]
            if path.is_relative_to(root):
                return str(Path(self.labels[root]) / path.relative_to(root))
        return str(path)


def python_startup_files() -> FileSnapshot:
    """A snapshot of the files every Python process runs at start-up: ``*.pth``,
    ``sitecustomize.py`` and ``usercustomize.py`` in the site-packages folders."""
    import site

    folders = [Path(folder) for folder in site.getsitepackages() if Path(folder).is_dir()]
    return FileSnapshot(folders, patterns={folder: ("*.pth", "sitecustomize.py", "usercustomize.py")
                                           for folder in folders})


class SharedFileWatch:
    """Files every worker's processes use (the site-packages start-up files), checked after each
    notebook. With several workers a change cannot be pinned on one notebook: every notebook
    being graded when it is found is reported (:meth:`finished` returns the message), so the
    instructor grades those again; with one worker that is exactly the notebook that did it."""

    def __init__(self, snapshot: FileSnapshot):
        self.snapshot = snapshot
        self.lock = threading.Lock()
        self.in_flight: set = set()
        self.reports: dict = {}

    def started(self, key) -> None:
        with self.lock:
            self.in_flight.add(key)

    def finished(self, key) -> str | None:
        """Restore the files if they changed; the message for ``key``'s notebook, if any."""
        with self.lock:
            changed = self.snapshot.restore()
            if changed:
                message = (f"Python start-up files of the grader ({', '.join(changed[:3])}) changed while this "
                           "notebook was graded (by it, or by a notebook graded at the same time); they were "
                           "restored: grade this notebook again")
                for other in self.in_flight:
                    self.reports[other] = message
            self.in_flight.discard(key)
            return self.reports.pop(key, None)
