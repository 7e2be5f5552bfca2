"""``python -m autograder publish OUT``: the student repository, with nothing of the instructor's in it.

The kit's own repository holds the reference solutions, the solution notebooks (model answers,
hidden tests) and the hidden checks, so it stays private. What students get is a separate tree,
written here and pushed to its own (public) repository::

    OUT/
      README.md            for students: Jupyter, Colab, fetching the model and data, handing in
      LICENSE              MIT
      pyproject.toml       installs student_src alone (what Colab lacks; never Colab's torch)
      .gitignore           data/*, checkpoints
      notebooks/NN_*.ipynb the release notebooks (stubs, visible checks; badges and set-up cell
                           point at --repository and the pinned --ref)
      student_src/         the library the notebooks import
      data/README.md       what `python -m student_src.fetch` downloads

Publishing twice from the same sources writes identical files (nothing depends on the time or
the machine). ``--assignment`` (repeatable) publishes a selection, to release assignments one at
a time during a term. Before anything is written, :func:`grader_only_findings` scans every file:
a publication that would contain a reference body, a model answer, a hidden test, a check or an
import of ``solutions``/``autograder``, or whose ``pyproject.toml`` would install any package but
``student_src``, is refused.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from autograder.authoring import build
from autograder.authoring.source_format import REPO_ROOT, RUBRIC_TITLE, kit_settings

TEMPLATES = REPO_ROOT / "autograder" / "authoring" / "templates" / "student_repository"
MARKER = ".xai-kit-published"  # marks a folder this command wrote (and may rewrite)
#: Path parts that only the instructor's side has.
GRADER_ONLY_NAMES = {"solutions", "autograder", "tests", "gradebook", "nbgrader_config",
                     "submitted", "autograded", "feedback", "mutants", "alternatives"}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "hidden.run(",
           RUBRIC_TITLE)
GRADER_IMPORT = re.compile(r"^\s*(from|import)\s+(solutions|autograder|tests)\b", flags=re.M)
#: One-line idioms any PyTorch code may contain: sharing one is not a leak.
# The kernel-side client of the hidden checks is public (student_src/grading_client.py): its import is not a leak.
GENERIC_LINES = {"with torch.enable_grad():", "targets = model(x).argmax(dim=1)",
                 "from student_src import grading_client as hidden"}


class PublishError(RuntimeError):
    """The publication was refused; the message says why (nothing was written)."""


def grader_only_lines() -> set[str]:
    """Distinctive lines (25 characters or more) of every reference solution body, model answer
    and hidden test of the solution notebooks: none may appear in what students get."""
    lines = set()
    for notebook_path in build.SOLUTION_DIR.glob("*.ipynb"):
        for cell in nbformat.read(str(notebook_path), 4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            text = cell.source
            if meta.get("solution") and cell.cell_type == "code":
                text = "\n".join(re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", text, flags=re.S))
            elif meta.get("grade") and cell.cell_type == "code":
                text = "\n".join(re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", text, flags=re.S))
            elif not meta.get("solution"):
                continue
            lines.update(line.strip() for line in text.splitlines() if len(line.strip()) >= 25)
    return lines - GENERIC_LINES


def _texts(path: Path) -> str:
    """What a file holds, as text (a notebook: its cells' sources and outputs)."""
    if path.suffix == ".ipynb":
        notebook = nbformat.read(str(path), 4)
        parts = [cell.source for cell in notebook.cells]
        parts += [str(output) for cell in notebook.cells for output in cell.get("outputs", [])]
        return "\n".join(parts)
    return path.read_text(errors="replace")


#: What the student repository's ``pyproject.toml`` may install: the kit's own (private) one installs
#: ``autograder`` and ``solutions`` too, for the instructor's course folders.
STUDENT_PACKAGES = ["student_src"]


def installed_packages_findings(pyproject: Path) -> list[str]:
    """Why ``pyproject`` would install more than :data:`STUDENT_PACKAGES` (what Colab's set-up cell
    pip-installs from the published repository): an explicit ``[tool.setuptools] packages`` list
    is required, since setuptools' automatic discovery (or a ``packages.find``) could take in any
    package folder of the tree."""
    import tomllib

    try:
        packages = tomllib.loads(pyproject.read_text()).get("tool", {}).get("setuptools", {}).get("packages")
    except tomllib.TOMLDecodeError as error:
        return [f"{pyproject.name}: not valid TOML ({error})"]
    if packages != STUDENT_PACKAGES:
        return [f"{pyproject.name}: installs {packages!r} (tool.setuptools.packages), not {STUDENT_PACKAGES!r} alone"]
    return []


def grader_only_findings(root: Path, files=None) -> list[str]:
    """Every reason the tree at ``root`` (or just ``files`` in it) must not reach students."""
    root = Path(root)
    lines = grader_only_lines()
    if len(lines) < 10:
        raise PublishError("the leak scan found almost no solution lines: are the solution notebooks built?")
    findings = []
    for path in sorted(files if files is not None else (p for p in root.rglob("*") if p.is_file())):
        relative = path.relative_to(root)
        if ".git" in relative.parts:
            continue
        named = GRADER_ONLY_NAMES & set(relative.parts[:-1] + (relative.stem,))
        if named:
            findings.append(f"{relative}: a grader-only name ({', '.join(sorted(named))})")
        if relative == Path("pyproject.toml"):
            findings += installed_packages_findings(path)
        text = _texts(path)
        findings += [f"{relative}: contains {marker!r}" for marker in MARKERS if marker in text]
        if GRADER_IMPORT.search(text):
            findings.append(f"{relative}: imports an instructor-only package")
        leaked = sorted(line for line in lines if line in text)
        if leaked:
            findings.append(f"{relative}: contains {len(leaked)} line(s) of the solutions, e.g. {leaked[0]!r}")
    return findings


def _render(template: str, **values) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _assignment_table(assignments, repository: str, ref: str) -> str:
    rows = ["| notebook | open in Colab |", "|---|---|"]
    for assignment in assignments:
        url = f"https://colab.research.google.com/github/{repository}/blob/{ref}/notebooks/{assignment}.ipynb"
        rows.append(f"| `notebooks/{assignment}.ipynb` | [open]({url}) |")
    return "\n".join(rows)


def _student_pyproject() -> str:
    """The student package's ``pyproject.toml``: the template's (student_src alone, renamed),
    with the kit's version, Python requirement and dependencies unchanged. Not the kit's own
    file, which installs ``autograder`` and ``solutions`` too."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependencies = "\n".join(f'    "{requirement}",' for requirement in project["dependencies"])
    return _render((TEMPLATES / "pyproject.toml").read_text(), version=project["version"],
                   requires_python=project["requires-python"], dependencies=dependencies)


def publish(out: Path, repository: str | None = None, ref: str | None = None, assignments=None) -> list[Path]:
    """Write the student repository into ``out`` and return the files written (sorted).

    ``out`` must be empty, missing, or an earlier publication (its files are replaced; a ``.git``
    folder in it is kept). Raises :class:`PublishError` when the scan finds anything grader-only.
    """
    settings = kit_settings()
    repository = repository or settings["github_repository"]
    ref = ref or settings["ref"]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise PublishError(f"--repository must be OWNER/NAME on GitHub, got {repository!r}")
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", ref) or ref.startswith("-"):
        raise PublishError(f"--ref must be a git tag or branch name, got {ref!r}")
    known = build.assignment_ids()
    assignments = list(assignments or known)
    unknown = sorted(set(assignments) - set(known))
    if unknown:
        raise PublishError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known)}")
    assignments = [assignment for assignment in known if assignment in assignments]
    out = Path(out)
    if out.exists() and any(p.name != ".git" for p in out.iterdir()) and not (out / MARKER).is_file():
        raise PublishError(f"{out} is not empty and is not an earlier publication: choose an empty folder")

    with tempfile.TemporaryDirectory(prefix="xai-publish-") as tmp:
        stage = Path(tmp) / "tree"
        built = build.build_all(Path(tmp) / "course", assignments, repository=repository, ref=ref)
        (stage / "notebooks").mkdir(parents=True)
        for assignment, (_, release) in built.items():
            shutil.copyfile(release, stage / "notebooks" / f"{assignment}.ipynb")
        shutil.copytree(REPO_ROOT / "student_src", stage / "student_src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (stage / "data").mkdir()
        shutil.copyfile(TEMPLATES / "data_README.md", stage / "data" / "README.md")
        (stage / "README.md").write_text(_render((TEMPLATES / "README.md").read_text(), repository=repository,
                                                 ref=ref, assignments=_assignment_table(assignments, repository,
                                                                                        ref)))
        shutil.copyfile(TEMPLATES / "LICENSE", stage / "LICENSE")
        shutil.copyfile(TEMPLATES / "gitignore", stage / ".gitignore")
        (stage / "pyproject.toml").write_text(_student_pyproject())
        (stage / MARKER).write_text(f"published by `python -m autograder publish` for {repository}@{ref}\n")
        findings = grader_only_findings(stage)
        if findings:
            raise PublishError("refused: the publication would give students grader-only material:\n  "
                               + "\n  ".join(findings))
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():
            if old.name != ".git":
                shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        for item in stage.iterdir():
            shutil.move(str(item), out / item.name)
    return sorted(p for p in out.rglob("*") if p.is_file() and ".git" not in p.relative_to(out).parts)


def main(out: str, repository: str | None = None, ref: str | None = None, assignments=None) -> int:
    try:
        files = publish(Path(out), repository, ref, assignments)
    except PublishError as error:
        print(error)
        return 1
    total = sum(p.stat().st_size for p in files)
    print(f"published {len(files)} files ({total / 1e6:.1f} MB) into {out}")
    print(f"next: cd {out} && git init -b main && git add -A && git commit -m 'Course release' && "
          f"git tag {ref or kit_settings()['ref']} && git push --tags (to the public student repository)")
    return 0
