"""What a student puts in a notebook is inert in the pages made from it: the feedback pages of
``grade SUBMISSIONS --out OUT`` and of the course folder's ``feedback`` command, and the page
formgrader shows the instructor.

One hostile notebook of Assignment 1 (solved, so it also has the kit's own figures) carries
``<script>``, event handlers (``onerror``, ``onload``, ``ontoggle``), ``javascript:`` links and an
SVG with ``onload`` in its written answer, in ``display(HTML(...))``, ``display(SVG(...))``,
``display(Markdown(...))`` and ``execute_result`` outputs, in printed text, in an error message,
in a raw HTML cell and in a cell's own source; in the course, the student's first and last names
carry a script too. Every payload, if it ran, would set ``data-pwned`` on the page's ``<html>``.

Each page is checked twice: parsed (no ``<script>`` from the student, no ``on*`` attribute from
the student, no ``javascript:`` address, the kit's Content-Security-Policy there for the feedback
pages, the honest content still real HTML: paragraphs, a table, the PNG figures), and opened in
headless Chromium (Debian's ``chromium``; ``make install`` installs it): the DOM it ends with has
no ``data-pwned``. A last test puts a script into a generated feedback page by hand and shows
that the page's policy alone keeps it from running.
"""

from __future__ import annotations

import csv
import html
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from bs4 import BeautifulSoup

from autograder.course import feedback
from autograder.engine import safe_output
from tests import grading_harness as harness
from tests.conftest import standin_assets_in
from tests.test_course import formgrader  # noqa: F401 (a fixture)

ASSIGNMENT = "01_hooks"
STUDENT = "mallory"


def _pwn(where: str) -> str:
    """JavaScript that marks the page as attacked from ``where``."""
    return f"document.documentElement.setAttribute('data-pwned','{where}')"


def _html_payload(where: str) -> str:
    """HTML with every kind of active content, each marking ``where`` if it runs."""
    return (f"<script>{_pwn(where + '-script')}</script>"
            f'<img src="x" onerror="{_pwn(where + "-onerror")}">'
            f'<svg onload="{_pwn(where + "-svg")}"><circle r="4"/></svg>'
            f'<details open ontoggle="{_pwn(where + "-ontoggle")}"><summary>s</summary></details>'
            f'<iframe src="javascript:parent.{_pwn(where + "-iframe")}"></iframe>'
            f'<a href="javascript:{_pwn(where + "-href")}">a link</a>')


SVG_PAYLOAD = (f'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" onload="{_pwn("svg-onload")}">'
               f'<script>{_pwn("svg-script")}</script><rect width="20" height="20"/></svg>')
WRITTEN_ANSWER = f"""Early layers see edges, late layers see object parts; here is *why*.

| layer | size |
|-------|------|
| layer1 | 32 |

The map is $A^k \\in \\mathbb{{R}}^{{4 \\times 4}}$ and `x < y` stays code.

{_html_payload("markdown")}

[click me](javascript:{_pwn("markdown-link")})
"""
HOSTILE_CELL = f'''# {_html_payload("source")}
from IPython.display import HTML, SVG, Markdown, display
display(HTML({_html_payload("html-output")!r}))
display(SVG({SVG_PAYLOAD!r}))
display(Markdown({_html_payload("markdown-output")!r}))
display({{"application/javascript": {_pwn("javascript-output")!r}}}, raw=True)
print({_html_payload("stream")!r})
HTML({_html_payload("execute-result")!r})
'''
ERROR_CELL = f"raise ValueError({_html_payload('error')!r})"
HOSTILE_NAME = _html_payload("name")


def hostile_submission() -> nbformat.NotebookNode:
    """The solved Assignment 1 with the payloads in its written answer and in three added cells."""
    notebook = harness.edit_cell(build_solved(), "q_early_late", WRITTEN_ANSWER)
    raw = nbformat.v4.new_raw_cell(_html_payload("raw"), metadata={"raw_mimetype": "text/html"})
    notebook.cells += [nbformat.v4.new_code_cell(HOSTILE_CELL), raw, nbformat.v4.new_code_cell(ERROR_CELL)]
    return notebook


def build_solved() -> nbformat.NotebookNode:
    from autograder.authoring import build

    return build.solved_submission(ASSIGNMENT)


# Chromium

def chromium() -> str:
    """Debian's chromium; the test fails (never skips) without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: run `make install` (it installs Debian's chromium), "
                    "or `apt-get install chromium`")
    return found


def rendered_dom(url: str, tmp_path: Path) -> BeautifulSoup:
    """The DOM headless Chromium ends with after loading ``url`` and letting its scripts, image
    errors and events run (``--virtual-time-budget``)."""
    command = [chromium(), "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", "--dump-dom", url]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium's own sandbox refuses to run as root
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-3000:]
    return BeautifulSoup(result.stdout, "html.parser")


def assert_nothing_ran(dom: BeautifulSoup) -> None:
    assert dom.html is not None
    assert dom.html.get("data-pwned") is None, f"a student's script ran: {dom.html.get('data-pwned')}"


# What the parsed page holds

def student_scripts(page: BeautifulSoup) -> list:
    """Script elements, ``on*`` attributes and ``javascript:`` addresses that carry a payload."""
    found = [tag for tag in page.find_all("script") if "pwned" in (tag.string or "") + tag.get("src", "")]
    for tag in page.find_all(True):
        for name, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else value
            if name.lower().startswith("on") and "pwned" in value:
                found.append(f"<{tag.name} {name}>")
            if re.match(r"\s*javascript:", value, re.IGNORECASE):
                found.append(f"<{tag.name} {name}={value[:40]}>")
    return found


def assert_inert_and_readable(page_text: str) -> BeautifulSoup:
    """The page has no active payload and still shows the honest content as HTML."""
    page = BeautifulSoup(page_text, "html.parser")
    assert student_scripts(page) == []
    assert "pwned" in page_text, "the payloads are expected to be shown, as text"
    assert page.find("td", string="layer1") is not None, "the answer's table is not a table"
    assert page.find("em", string="why") is not None and page.find("code", string="x < y") is not None
    assert "A^k \\in \\mathbb{R}^{4 \\times 4}" in page.get_text()  # the formula, as its TeX source
    figures = [img for img in page.find_all("img") if img.get("src", "").startswith("data:image/png;base64,")]
    assert len(figures) >= 2, "the kit's figures (image/png outputs) are missing"
    return page


def assert_kit_csp(page: BeautifulSoup) -> None:
    metas = page.find_all("meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert [meta["content"] for meta in metas] == [safe_output.CONTENT_SECURITY_POLICY]
    assert "script-src 'none'" in safe_output.CONTENT_SECURITY_POLICY
    assert page.head.find_all(True)[1] is metas[0], "the policy is not at the start of the head"
    assert page.find_all("script") == [], "a feedback page runs no script at all"


# The two ways feedback is made

@pytest.fixture(scope="module")
def graded_out(tmp_path_factory, standin_assets_module) -> Path:
    """OUT of ``grade SUBMISSIONS --out OUT`` for the hostile notebook (stand-in assets)."""
    root = tmp_path_factory.mktemp("sanitize_grade")
    rows = harness.grade_cohort(root, ASSIGNMENT, {STUDENT: hostile_submission()}, jobs=1)
    assert rows[STUDENT]["autograded_total"].status == "graded"
    return root / "out"


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    """A course folder whose roster gives the student a hostile name, with the hostile notebook
    collected, graded and given feedback (``feedback`` command). Also the ``term`` formgrader's
    fixture (from test_course) starts its server on."""
    from autograder.course.autograde import grade_course
    from autograder.course.collect import collect
    from autograder.course.init import init_course

    root = tmp_path_factory.mktemp("sanitize_course")
    with open(root / "roster.csv", "w", newline="") as roster:
        csv.writer(roster).writerows([("id", "first_name", "last_name", "email", "lms_user_id"),
                                      (STUDENT, HOSTILE_NAME, "Doe", "m@example.edu", "1")])
    with standin_assets_in(root / "assets"):
        course = init_course(root / "course", course_id="xai-test", assignments=[ASSIGNMENT],
                             roster=root / "roster.csv")
        folder = root / "exchange_collected" / STUDENT / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(hostile_submission(), folder / f"{ASSIGNMENT}.ipynb")
        collect(course, root / "exchange_collected")
        grade_course(course, jobs=1, progress=False)
        report = feedback.generate(course)
        yield SimpleNamespace(course=course, pages=report["written"])


def test_grade_out_feedback_shows_student_content_inert(graded_out, tmp_path):
    page_path = graded_out / "feedback" / STUDENT / f"{ASSIGNMENT}.html"
    page = assert_inert_and_readable(page_path.read_text())
    assert_kit_csp(page)
    assert_nothing_ran(rendered_dom(page_path.as_uri(), tmp_path))


def test_course_feedback_command_shows_student_content_inert(term, tmp_path):
    [page_path] = term.pages
    page = assert_inert_and_readable(page_path.read_text())
    assert_kit_csp(page)
    assert_nothing_ran(rendered_dom(page_path.as_uri(), tmp_path))


def test_formgrader_shows_student_content_and_names_inert(term, formgrader, tmp_path):  # noqa: F811
    """formgrader's page of the submission, from a real server on the course folder: sanitized
    (its own scripts, which it needs to save grades, still load and run)."""
    api = f"{formgrader.base}/formgrader/api"
    [notebook] = formgrader.session.get(f"{api}/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}").json()
    url = f"{formgrader.base}/formgrader/submissions/{notebook['id']}/"
    answer = formgrader.session.get(url)
    assert answer.status_code == 200
    page = assert_inert_and_readable(answer.text)
    shown_name = page.find("a", class_="name-shown").get_text()
    assert "<script>" in shown_name, "the student's name is shown, as text"
    token = formgrader.session.headers["Authorization"].split()[-1]
    dom = rendered_dom(f"{url}?token={token}", tmp_path)
    assert_nothing_ran(dom)
    assert dom.find(attrs={"data-link": True}) is None, "formgrader's own scripts did not run"


def test_the_feedback_pages_policy_alone_stops_a_script(graded_out, tmp_path):
    """Defence in depth: a script put into the generated page by hand (as if the sanitizer had
    missed it) does not run, because of the page's Content-Security-Policy."""
    page = (graded_out / "feedback" / STUDENT / f"{ASSIGNMENT}.html").read_text()
    injected = tmp_path / "injected.html"
    injected.write_text(page.replace("</body>", f'<script>{_pwn("injected")}</script>'
                                                f'<img src="x" onerror="{_pwn("injected-onerror")}"></body>', 1))
    assert_nothing_ran(rendered_dom(injected.as_uri(), tmp_path))
    without_policy = tmp_path / "without_policy.html"
    unprotected = BeautifulSoup(injected.read_text(), "html.parser")
    for meta in unprotected.find_all("meta", attrs={"http-equiv": "Content-Security-Policy"}):
        meta.decompose()
    without_policy.write_text(str(unprotected))
    dom = rendered_dom(without_policy.as_uri(), tmp_path)
    assert (dom.html.get("data-pwned") or "").startswith("injected"), "the probe should run once the policy is gone"


def test_a_feedback_page_without_the_kits_policy_is_not_copied(tmp_path):
    """nbgrader run without the kit's configuration (a config that failed to load) renders an
    unsanitized page: the grader copies a note in its place."""
    page = tmp_path / "page.html"
    page.write_text(f"<html><head></head><body>{_html_payload('unsanitized')}</body></html>")
    written = safe_output.copy_feedback(page, tmp_path / "OUT", STUDENT, ASSIGNMENT)
    text = written.read_text()
    assert "pwned" not in text and "without the kit's configuration" in html.unescape(text)
    assert safe_output.has_kit_csp(written.read_bytes())


def test_the_kits_sanitizer_keeps_markdown_and_drops_active_content():
    from nbconvert.filters import markdown2html

    cleaned = safe_output.clean_html(markdown2html(WRITTEN_ANSWER))
    page = BeautifulSoup(cleaned, "html.parser")
    assert student_scripts(page) == [] and page.find("script") is None and page.find("svg") is None
    assert page.find("td", string="layer1") is not None and page.find("p") is not None
    assert safe_output.clean_html('<img src="data:image/png;base64,AAAA" alt="f">') == \
        '<img src="data:image/png;base64,AAAA" alt="f">'
    for address in ("data:text/html;base64,PHNjcmlwdD4=", "javascript:alert(1)", " JaVaScRiPt:alert(1)"):
        assert "href" not in safe_output.clean_html(f'<a href="{address}">x</a>'), address


def test_the_committed_templates_are_derived_from_the_installed_nbgrader():
    for name, text in feedback.kit_templates().items():
        assert (feedback.TEMPLATE_FOLDER / name).read_text() == text, \
            f"{name}: run python -c 'from autograder.course.feedback import write_template; write_template()'"
