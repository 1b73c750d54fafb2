"""The README stays short, and the README and docs/ stand alone: every relative link (and its
#anchor) resolves inside the repository, and none leaves it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_WORDS = 2000


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(page: Path, text: str) -> list[str]:
    """The links of `text` (the content of `page`) that leave the repository or point nowhere."""
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if ROOT not in target.parents and target != ROOT:
            broken.append(f"{link} (outside the repository)")
        elif not target.exists():
            broken.append(f"{link} (no such file)")
        elif fragment and target.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", target.read_text(), flags=re.MULTILINE)
            if fragment not in {anchor(heading) for heading in headings}:
                broken.append(f"{link} (no such heading)")
    return broken


def test_the_readme_starts_short():
    words = len((ROOT / "README.md").read_text().split())
    assert words <= README_WORDS, f"README.md has {words} words; move reference material into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_resolves_inside_the_repository(page):
    assert not broken_links(page, page.read_text()), page


def test_a_planted_broken_link_is_found():
    page = ROOT / "docs" / "models.md"
    text = "[a](config.md) [b](missing.md) [c](../../shared/DESIGN.md) [d](models.md#no-such) [e](#networks) [f](https://x.org)"
    assert broken_links(page, text) == [
        "missing.md (no such file)",
        "../../shared/DESIGN.md (outside the repository)",
        "models.md#no-such (no such heading)",
    ]
    assert anchor("A sweep at a glance: `--images`") == "a-sweep-at-a-glance---images"
