"""The documentation site: docs/ and mkdocs.yml build strictly with Zensical, so a broken
link or anchor fails `make test`; the README's links lead to files and headings that exist."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ZENSICAL = Path(sys.executable).parent / "zensical"


def _build(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ZENSICAL), "build", "--strict"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(project)},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the site's sources: the build writes site/ and .cache/ beside mkdocs.yml."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def _nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        for value in entry.values():
            pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_the_site_builds_strictly_with_every_page_in_its_navigation(project: Path):
    done = _build(project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    nav = _nav_pages(yaml.safe_load((project / "mkdocs.yml").read_text())["nav"])
    assert sorted(nav) == sorted(p.name for p in (ROOT / "docs").glob("*.md"))  # no orphan
    for page in nav:
        built = "index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html"
        assert (project / "site" / built).is_file(), built
    assert 'id="quality-on-real-photos"' in (project / "site/benchmarks/index.html").read_text()


def test_a_broken_link_or_anchor_fails_the_build(project: Path):
    page = project / "docs" / "scoring.md"
    page.write_text(page.read_text() + "\nSee [the gate](serving.md#no-such-heading).\n")
    done = _build(project)
    assert done.returncode != 0
    assert "anchor does not exist" in done.stdout + done.stderr


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub and the site make it (for the headings used here)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readmes_links_lead_to_files_and_headings_that_exist():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((?!https?://)([^)\s]+)\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.is_file(), link
        if anchor:
            headings = re.findall(r"(?m)^#+ (.+)$", target.read_text())
            assert anchor in {_slug(h) for h in headings}, link
