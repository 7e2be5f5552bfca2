"""Write the grader's results into OUT without following anything a notebook planted there.

A notebook being graded runs as the grader's user, so while it runs it may replace
``OUT/grades.csv`` by a symbolic link to ``~/.bashrc``, or ``OUT/feedback/alice`` by a link to
another folder. A plain ``open(path, "w")`` afterwards would write through the link. Here:

- every folder under OUT is opened one name at a time, relative to its parent's file descriptor,
  with ``O_NOFOLLOW``: a symbolic link (or a file) where a folder should be is removed and a real
  folder made in its place (:func:`open_folder`);
- every file is written to a new temporary file in its folder (created with ``O_EXCL`` and
  ``O_NOFOLLOW``) and then moved onto its name with ``os.replace``, which replaces a link there,
  never its target (:func:`write_file_atomically`);
- names are single path components (:func:`check_name`): a student id such as ``..``, ``a/b``
  or ``/etc`` cannot reach outside ``OUT/feedback/``;
- a feedback page over :data:`MAX_FEEDBACK_BYTES` is replaced by a short note
  (:func:`copy_feedback`), and is read without following a link in the course folder either;
  so is a page without the kit's :data:`CSP_META` (nbgrader ran without the kit's configuration,
  so nothing in it was sanitized).

What a student wrote is shown inert. Every page nbconvert renders for the course (feedback and
formgrader, configured in ``autograder/course/nbgrader_config.py``) passes the HTML of markdown
cells (after markdown rendering, so raw HTML inside markdown is caught too), of ``text/html`` and
``text/markdown`` outputs and of inline SVG through :func:`clean_html`: nbconvert's own sanitizing
hook (``HTMLExporter.sanitize_html``, the template filter ``clean_html``) with bleach, the sanitizer
nbconvert depends on, and an allow-list wide enough for what markdown renders (headings,
paragraphs, tables, images, code). Tags outside it are shown as text (``&lt;script&gt;``), every
attribute outside it is dropped (``onerror``, ``onload``, ``style``), and a link or image keeps its
address only if it is ``http``, ``https``, ``mailto`` or, for an image, ``data:image/...``
(``javascript:`` goes). Code, stream output, tracebacks and plain text are escaped by nbconvert
itself. The feedback pages also carry :data:`CONTENT_SECURITY_POLICY` in a ``<meta http-equiv>``
(a page opened from disk has no headers): no script runs, whatever the sanitizer missed.

OUT itself is the instructor's choice and is used as given (it may be a link they made).
"""

from __future__ import annotations

import errno
import html
import os
import secrets
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import bleach

MAX_FEEDBACK_BYTES = 5 * 2**20
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


#: No script, plugin, frame, form or fetch; styles only inline (nbconvert's template inlines its CSS);
#: images only ``data:`` (the notebook's own figures: no tracking pixel a student links to).
#: MathJax is not loaded (it is a script): formulas show as their TeX source.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'none'; object-src 'none'; style-src 'unsafe-inline'; "
                           "img-src data:; font-src data:; base-uri 'none'; form-action 'none'")
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
#: A feedback page whose head has no :data:`CSP_META` within this many bytes is not copied.
CSP_WITHIN_BYTES = 1024

#: What rendered markdown and an honest HTML output need; everything else is shown as text.
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var"})
_TAG_ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"}, "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start", "type"}, **{f"h{level}": {"id"} for level in range(1, 7)}}
_ANY_TAG_ATTRIBUTES = {"class", "title"}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto", "data"})


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """bleach's attribute test: the allow-lists above, and ``data:`` only for an image's picture
    (``data:image/...``; an SVG shown as an image runs no script). bleach then checks every
    ``href``/``src`` against :data:`ALLOWED_PROTOCOLS` (``javascript:`` is dropped there)."""
    if name not in _ANY_TAG_ATTRIBUTES and name not in _TAG_ATTRIBUTES.get(tag, ()):
        return False
    if name in ("href", "src") and value.strip().lower().startswith("data:"):
        return tag == "img" and name == "src" and value.strip().lower().startswith("data:image/")
    return True


_CLEANER = bleach.Cleaner(tags=ALLOWED_TAGS, attributes=_allowed_attribute, protocols=ALLOWED_PROTOCOLS,
                          strip=False, strip_comments=True)


def clean_html(element) -> str:
    """``element`` (HTML, str or bytes) with only the allowed tags, attributes and addresses left.

    Registered as nbconvert's template filter ``clean_html`` (``HTMLExporter.filters``), in place
    of nbconvert's, whose allow-list shows every ``<p>``, heading and image of rendered markdown
    as text."""
    return _CLEANER.clean(element.decode() if isinstance(element, bytes) else str(element))


class _HeadStart(HTMLParser):
    """Reads a page's first tags up to the first one that is not ``html``, ``head`` or ``meta``;
    ``policies``: the Content-Security-Policy values of the ``<meta http-equiv>`` tags among them."""

    def __init__(self):
        super().__init__()
        self.policies, self.done = [], False

    def handle_starttag(self, tag, attrs):
        attributes = {name.lower(): value for name, value in attrs}
        if self.done or tag not in ("html", "head", "meta"):
            self.done = True
        elif (attributes.get("http-equiv") or "").lower() == "content-security-policy":
            self.policies.append(attributes.get("content"))


def has_kit_csp(page: bytes) -> bool:
    """Whether ``page`` carries :data:`CONTENT_SECURITY_POLICY` in a ``<meta http-equiv>`` at the
    start of its head, before any other tag (so before anything a notebook could have put there;
    nbconvert re-serializes the page, so the tag's spelling may differ from :data:`CSP_META`)."""
    reader = _HeadStart()
    reader.feed(page[:CSP_WITHIN_BYTES].decode("utf-8", errors="replace"))
    return CONTENT_SECURITY_POLICY in reader.policies


def check_name(name: str) -> str:
    """``name`` if it is one plain path component; ValueError for ``""``, ``.``, ``..``, an
    absolute path or anything with a separator or NUL in it."""
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    if (not isinstance(name, str) or name in ("", ".", "..") or "\0" in name
            or any(separator in name for separator in separators)):
        raise ValueError(f"not a plain file name: {name!r}")
    return name


def remove_entry(folder_fd: int, name: str) -> None:
    """Remove ``name`` in the folder ``folder_fd``, whatever it is; a folder with everything in it
    (``shutil.rmtree`` with ``dir_fd`` never follows links inside). Missing is fine."""
    try:
        mode = os.lstat(name, dir_fd=folder_fd).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(name, dir_fd=folder_fd)
    else:
        os.unlink(name, dir_fd=folder_fd)


def _open_or_make_folder(parent_fd: int, name: str) -> int:
    """The fd of the real folder ``name`` in ``parent_fd``: made if missing, and put in place of
    a link, file, FIFO, ... found there."""
    for _ in range(10):  # a notebook racing us can only make us retry, never make us follow
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            remove_entry(parent_fd, name)
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            pass
    raise OSError(f"could not make a folder {name!r}: something keeps replacing it")


def open_folder(root: Path, parts) -> int:
    """An fd of ``root/parts[0]/parts[1]/...``, each part a real folder (see the module's
    docstring); ``root`` is made if missing. Close it with ``os.close``."""
    Path(root).mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts:
            child = _open_or_make_folder(fd, check_name(part))
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_path(root: Path, *parts: str) -> None:
    """Remove ``root/parts...`` (a file, a folder and its contents, or a link: the link only)."""
    *folders, name = parts
    fd = open_folder(root, folders)
    try:
        remove_entry(fd, check_name(name))
    finally:
        os.close(fd)


def write_file_atomically(root: Path, parts, data: bytes) -> Path:
    """Write ``data`` to ``root/parts...`` as a new regular file (mode 0644) that replaces
    whatever was there (a link is replaced, not followed; a folder is removed); return the path.

    The bytes go to a fresh temporary file in the same folder, which ``os.replace`` then moves
    onto the name in one step: a reader never sees half a file, and nothing planted is written
    through.
    """
    *folders, name = parts
    check_name(name)
    fd = open_folder(root, folders)
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        file_fd = os.open(temporary, _NEW_FILE_FLAGS, 0o644, dir_fd=fd)
        with open(file_fd, "wb") as file:
            file.write(data)
        if _is_folder(fd, name):  # os.replace cannot put a file over a folder
            remove_entry(fd, name)
        os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=fd)
        except FileNotFoundError:
            pass
        raise
    finally:
        os.close(fd)
    return Path(root, *parts)


def _is_folder(folder_fd: int, name: str) -> bool:
    """Whether ``name`` in ``folder_fd`` is a real folder (a link to one is not)."""
    try:
        return stat.S_ISDIR(os.lstat(name, dir_fd=folder_fd).st_mode)
    except FileNotFoundError:
        return False


def read_regular_file(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (not a link) of at most ``limit`` bytes, else
    None. Reads at most ``limit + 1`` bytes, so a file growing meanwhile cannot make it read more."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with open(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = file.read(limit + 1)
    return data if len(data) <= limit else None


def note_page(text: str) -> bytes:
    """A short HTML page (with :data:`CSP_META`) that says ``text``."""
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">{CSP_META}</head>'
            f"<body><p>{html.escape(text)}</p></body></html>\n").encode()


def too_big_note(what: str, limit: int) -> bytes:
    """The short HTML page that stands in for a feedback page that was too big (or not a file)."""
    return note_page(f"The feedback for {what} was not copied: it was larger than {limit // 2**20} MB or not a "
                     "regular file (a cell that prints or plots without end?). Ask your instructor for it.")


def not_sanitized_note(what: str) -> bytes:
    """The page that stands in for a feedback page rendered without the kit's sanitizing settings."""
    return note_page(f"The feedback for {what} was not copied: nbgrader rendered it without the kit's "
                     "configuration, so what the notebook shows was not made safe. Ask your instructor for it.")


def copy_feedback(page: Path, out: Path, student_id: str, assignment: str,
                  limit: int | None = None) -> Path | None:
    """Copy nbgrader's feedback page ``page`` to ``out/feedback/<student_id>/<assignment>.html``;
    return the written path, None when nbgrader wrote no page.

    ``student_id`` and ``assignment`` must be plain names (ValueError otherwise). A page over
    ``limit`` bytes (default :data:`MAX_FEEDBACK_BYTES`), one that is not a regular file, and one
    without the kit's :data:`CSP_META` are replaced by a short note saying so.
    """
    limit = MAX_FEEDBACK_BYTES if limit is None else limit
    name = f"{check_name(assignment)}.html"
    parts = ("feedback", check_name(student_id), name)
    if not os.path.lexists(page):
        return None
    data = read_regular_file(page, limit)
    if data is None:
        data = too_big_note(f"{assignment} of {student_id}", limit)
    elif not has_kit_csp(data):
        data = not_sanitized_note(f"{assignment} of {student_id}")
    return write_file_atomically(out, parts, data)
