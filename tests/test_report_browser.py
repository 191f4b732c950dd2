"""The study report as a person sees it: real headless Chromium (Debian's), no console errors, every image
decodes, a full-page screenshot; and Snakemake's own --report."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; `make test` installs Debian's chromium as root")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_report_opens_cleanly_in_chromium(study, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto((study / "report/index.html").as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, "
                           "i.naturalHeight, i.src.startsWith('data:image/png;base64,')])")
    requests = page.evaluate("performance.getEntriesByType('resource').map(r => r.name)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    links_ok = page.evaluate("Array.from(document.querySelectorAll('a[href^=\"#\"]')).every("
                             "a => document.getElementById(a.getAttribute('href').slice(1)) !== null)")
    assert problems == []
    assert len(images) >= 7  # design, PCA, nomogram, forest, ROC, calibration, decision
    for alt, complete, width, height, embedded in images:
        assert complete and width > 0 and height > 0 and embedded, alt
    assert requests == [], "the report must not fetch anything"
    assert links_ok, "every table-of-contents and checklist link points at a section"
    for expected in ("Study design", "Cohort characteristics (Table 1)", "Acquisition and quality control",
                     "Harmonisation", "Models", "Performance: nodal_metastasis", "Model comparisons: nodal_metastasis",
                     "Methods (auto-written from the settings used)", "Provenance",
                     "Reporting checklist (TRIPOD+AI, CLEAR)"):
        assert expected in headings
    assert shot.stat().st_size > 100_000
    shutil.copy(shot, study.parent / "report_screenshot.png")


def test_snakemake_report_builds(study):
    """Snakemake's own report (figures registered with report() and captions) builds from the finished study."""
    cfg = study.parent.parent / "config.yaml"
    out = study.parent / "snakemake_report.zip"
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([str(snakemake), "--configfile", str(cfg), "--report", str(out)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(out).namelist()
    assert any(n.endswith("roc_nodal_metastasis.png") for n in names)
    assert any(n.endswith("report.html") for n in names)
