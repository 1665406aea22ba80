"""Documentation lives in the repository: every file or folder that a file of the tree names
exists, nothing points at a machine path or a document outside the tree, and each vendor
page links to the vendor's own public documentation.

What counts as a reference (see :func:`references`):

* a token that starts with a top-level folder of the tree and goes on with ``/``
  (``runs/lifecycle.py``, ``docs/vendors/``, ``tests/connectors/*.py``): globs must match
  something;
* any token ending in ``.md`` (``docs/erd.md``, or a bare name, which some file of the tree
  must carry);
* the target of a markdown link ``[text](target)`` that is not a URL, relative to the file
  that holds the link.

An anchor after ``#`` in a link to a markdown file must name one of its headings.  URLs are
left out; so are ``.venv``, ``var`` and everything else git ignores.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()

#: Where each vendor page's public documentation lives (the page must link there).
VENDOR_DOCS = {
    "hubspot.md": ("https://developers.hubspot.com/",),
    "mailchimp.md": ("https://mailchimp.com/developer/",),
    "zoom.md": ("https://developers.zoom.us/",),
    "teams.md": ("https://learn.microsoft.com/",),
}
#: Paths of one machine, the old place of the design notes, and the section numbers of those
#: outside notes ("vendor doc A6", "doc B2", "(A4, B4)"): named nowhere in the tree.
FORBIDDEN = (
    re.compile(r"(?<![\w.])/(?:work|root|home)/"),
    re.compile(r"\.\./shared\b"),
    re.compile(r"\bvendor\s+doc\b|\bdoc\s+[A-C]\d\b|\(\s*[A-C]\d(?:\s*,\s*[A-C]\d)*\s*\)"),
)

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s)>\]\"'`]+", re.I)
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_MD_TOKEN = re.compile(r"(?<![\w./-])([\w./*-]*\w\.md)(#[\w-]+)?\b")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def tracked_files() -> list[Path]:
    """Every file git knows or would add (ignored ones left out), that still exists."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return sorted(p for p in (ROOT / name for name in listed.split("\0") if name) if p.is_file())


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation gone, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading.replace("`", ""))
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def _path_token(top_level: set[str]) -> re.Pattern[str]:
    names = "|".join(sorted(map(re.escape, top_level), key=len, reverse=True))
    return re.compile(rf"(?<![\w./-])((?:{names})/[\w./*-]*)(#[\w-]+)?")


def _resolves(target: str, base: Path, root: Path, names: set[str], relative: bool) -> bool:
    target = target.rstrip(".,;:")
    if not target:
        return True
    if not relative and "/" not in target:  # a bare file name: some file of the tree has it
        return target in names
    start = base if relative else root
    if "*" in target:
        return any(True for _ in start.glob(target))
    return (start / target).exists()


def _anchor_ok(target: str, anchor: str | None, start: Path) -> bool:
    page = start / target
    if not anchor or not target.endswith(".md") or not page.is_file():
        return True  # a missing file is reported as such
    return anchor.lstrip("#").lower() in anchors(page.read_text())


def references(
    text: str, top_level: set[str], *, markdown: bool
) -> list[tuple[str, str | None, bool]]:
    """``(target, anchor, relative_to_file)`` of every reference in ``text``; markdown
    links only in a markdown file (in code, ``x["k"](y)`` is a call)."""
    found: list[tuple[str, str | None, bool]] = []
    if markdown:
        for target in _LINK.findall(text):
            if _URL.match(target) or target.startswith(("mailto:", "#")):
                continue
            path, _, anchor = target.partition("#")
            found.append((path, "#" + anchor if anchor else None, True))
        text = _LINK.sub(" ", text)
    text = _URL.sub(" ", text)
    for match in _path_token(top_level).finditer(text):
        found.append((match.group(1).rstrip(".,;:"), match.group(2), False))
    for match in _MD_TOKEN.finditer(text):
        if match.group(1).split("/")[0] not in top_level:  # others are covered above
            found.append((match.group(1), match.group(2), False))
    return found


def broken_references(
    text: str, where: Path, root: Path, top_level: set[str], names: set[str]
) -> list[str]:
    """The references of ``text`` (the file ``where``) that name nothing in ``root``."""
    broken = []
    for target, anchor, relative in references(text, top_level, markdown=where.suffix == ".md"):
        start = where.parent if relative else root
        if not _resolves(target, start, root, names, relative):
            broken.append(target)
        elif not _anchor_ok(target, anchor, start):
            broken.append(f"{target}{anchor}")
    return broken


def _tree() -> tuple[list[Path], set[str], set[str]]:
    files = tracked_files()
    relative = [p.relative_to(ROOT) for p in files]
    top_level = {r.parts[0] for r in relative if len(r.parts) > 1}
    return files, top_level, {r.name for r in relative}


def _texts() -> list[tuple[Path, str]]:
    """Every text file of the tree but this one, whose examples are broken on purpose."""
    found = []
    for path in tracked_files():
        text = text_of(path)
        if text is not None and path != THIS:
            found.append((path, text))
    return found


def outside_references(text: str) -> list[tuple[int, str]]:
    """``(line number, match)`` of every :data:`FORBIDDEN` pattern in ``text``."""
    return sorted(
        (text.count("\n", 0, match.start()) + 1, " ".join(match.group(0).split()))
        for pattern in FORBIDDEN
        for match in pattern.finditer(text)
    )


def test_every_path_a_file_names_exists() -> None:
    _, top_level, names = _tree()
    broken = {}
    for path, text in _texts():
        bad = broken_references(text, path, ROOT, top_level, names)
        if bad:
            broken[str(path.relative_to(ROOT))] = sorted(set(bad))
    assert broken == {}


def test_no_file_points_outside_the_tree() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {found}"
        for path, text in _texts()
        for line, found in outside_references(text)
    ]
    assert offending == []


def test_every_vendor_page_links_to_the_vendors_public_docs() -> None:
    pages = sorted((ROOT / "docs" / "vendors").glob("*.md"))
    assert {p.name for p in pages} == set(VENDOR_DOCS), "add the new vendor's docs host here"
    for page in pages:
        urls = _URL.findall(page.read_text())
        assert urls, f"{page.name} links to nothing"
        assert all(u.startswith("https://") for u in urls), f"{page.name}: a link is not https"
        assert any(u.startswith(VENDOR_DOCS[page.name]) for u in urls), page.name


def test_the_checks_find_what_is_broken(tmp_path: Path) -> None:
    """The checks above can fail: a small tree with good and bad references of each kind."""
    (tmp_path / "docs").mkdir()
    guide = tmp_path / "docs" / "guide.md"
    guide.write_text("# Guide\n\n## The life of a `run`\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "sync.py").write_text("")
    tree = (tmp_path, {"docs", "runs"}, {"guide.md", "sync.py"})
    # The planted names are built here, so that no scan of this file finds them as they are.
    design, notes, shared = "DESIGN" + ".md", "shared" + "/notes/x.md", ".." + "/shared"
    markdown = (
        "See docs/guide.md#the-life-of-a-run, runs/sync.py, runs/*.py, guide.md and\n"
        "[the guide](guide.md#guide), not https://example.com/docs/y.md. Broken:\n"
        f"runs/gone.py, docs/guide.md#no-such-heading, {design}, {notes} and\n"
        "[a link](../elsewhere/page.md).\n"
    )
    assert sorted(broken_references(markdown, guide, *tree)) == [
        "../elsewhere/page.md",
        design,
        "docs/guide.md#no-such-heading",
        "runs/gone.py",
        notes,
    ]
    code = 'handlers["x"](request)  # see runs/sync.py and runs/gone.py\n'
    assert broken_references(code, tmp_path / "runs" / "sync.py", *tree) == ["runs/gone.py"]
    outside = f"a\n/home/someone/notes and {shared}/file\n(vendor\ndoc A6), (A4, B4)\n"
    assert outside_references(outside) == [
        (2, shared),
        (2, "/home/"),
        (3, "vendor doc"),
        (4, "(A4, B4)"),
    ]
    assert outside_references("see docs/vendors/zoom.md and the vendors' docs") == []
