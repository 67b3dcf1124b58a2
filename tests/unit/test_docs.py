"""The README and docs/ stand alone: every link and every file they name is in the repository,
and nothing points at files outside it that a clone does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve_to_files_in_the_repository(doc: Path) -> None:
    links = LINK.findall(doc.read_text())
    for target in links:
        if re.match(r"[a-z]+:", target):
            continue  # an outside address (https:, mailto:) is not a file
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        assert path.is_relative_to(REPO), f"{doc.name}: {target} points outside the repository"
        assert path.exists(), f"{doc.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(path), f"{doc.name}: no heading for #{anchor} in {path.name}"


def test_nothing_points_outside_the_repository() -> None:
    named = [*DOCS, REPO / "Makefile", REPO / "pyproject.toml"]
    named += sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
    for path in named:
        text = path.read_text()
        for needle in ("../shared", "SPEC.md", "DESIGN.md"):
            assert needle not in text, f"{path.relative_to(REPO)} names {needle}"


def test_docs_named_in_the_code_exist() -> None:
    named = set()
    for path in [*sorted((REPO / "src").rglob("*.py")), *sorted((REPO / "bench").rglob("*.py"))]:
        named.update(re.findall(r"docs/[\w\-]+\.md", path.read_text()))
    named.update(re.findall(r"docs/[\w\-]+\.md", (REPO / "Makefile").read_text()))
    assert named, "the code names no docs at all: the pattern is broken"
    for name in sorted(named):
        assert (REPO / name).exists(), f"{name} is named in the code but does not exist"
