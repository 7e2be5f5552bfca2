"""The grader's own files, as a notebook being graded must not be able to change them. Grader-only.

A notebook runs as the same user as the grader, so it *can* write files. What it could gain:
rewrite ``autograder/checks/*.py`` (or drop a ``.pyc`` beside them) so that the notebooks graded
after it pass, or edit the course's source notebooks that nbgrader restores locked cells from.
Two defences, used by ``grade``:

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
from pathlib import Path

from autograder.source_format import REPO_ROOT

#: The packages a grading kernel imports from the grader's code folder.
CODE_PACKAGES = ("autograder", "solutions", "student_src")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "figures", "notebooks", "assignments", "templates")


def private_code_copy(target: Path) -> Path:
    """Copy the grader code a kernel imports (``CODE_PACKAGES``, without caches, figures or
    notebooks) into ``target``; put ``target`` first on the kernels' PYTHONPATH."""
    target.mkdir(parents=True, exist_ok=True)
    for package in CODE_PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=_IGNORED)
    return target


def _is_cache(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


class FileSnapshot:
    """The exact contents of every file under ``roots`` (folders or single files).

    ``labels``: ``{root: name}`` for messages (default: the root's own name; ``""`` for none).
    ``skip_caches``: leave ``__pycache__`` alone (for the kit's checkout, where Python itself
    writes bytecode while grading runs); grading folders are used with bytecode writing off, so
    there any ``.pyc`` is somebody's doing.
    """

    def __init__(self, roots, skip_caches: bool = False, labels: dict | None = None):
        self.roots = [Path(root) for root in roots]
        self.skip_caches = skip_caches
        # How a root's files are named in messages: "<label>/<path inside the root>".
        self.labels = {root: root.name for root in self.roots} | {Path(k): v for k, v in (labels or {}).items()}
        self.contents: dict[Path, bytes] = {}
        for root in self.roots:
            self.contents.update(self._files(root))

    def _files(self, root: Path) -> dict[Path, bytes]:
        if root.is_file():
            return {root: root.read_bytes()}
        return {path: path.read_bytes() for path in sorted(root.rglob("*"))
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
                for path in sorted(root.rglob("*"), reverse=True):
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
