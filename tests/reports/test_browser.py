"""The report opens in a real browser: headless Chromium loads the page and every figure.

The page itself carries no script; the test renders a copy with a short probe added that
writes, once the page has loaded, how many images decoded with a non-zero width.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reports import build_run_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_TIMEOUT_S = 60
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  const p = document.createElement("p");
  p.id = "probe";
  p.textContent = `images-loaded ${ok} of ${imgs.length}`;
  document.body.appendChild(p);
});
</script>"""


@pytest.fixture
def chromium() -> str:
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI is set but there is no chromium binary: `apt-get install -y chromium`")
    pytest.skip("no chromium binary on PATH (install: apt-get install -y chromium)")


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_loads_the_page_and_decodes_every_figure(
    run_dir: Path, tmp_path: Path, chromium: str
) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = dump_dom(chromium, probed, tmp_path / "profile")
    found = re.search(r"images-loaded (\d+) of (\d+)", dom)
    assert found, "the probe never ran: the page did not finish loading"
    loaded, total = map(int, found.groups())
    assert total == text.count("<img ") > 0
    assert loaded == total
    assert "<h1>Cashless City run: tiny</h1>" in dom


def test_a_broken_figure_is_caught_by_the_probe(
    run_dir: Path, tmp_path: Path, chromium: str
) -> None:
    """The check can fail: an image whose data is not a PNG does not count as loaded."""
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    broken = text.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    probed = tmp_path / "broken.html"
    probed.write_text(broken.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    loaded, total = map(
        int,
        re.findall(
            r"images-loaded (\d+) of (\d+)", dump_dom(chromium, probed, tmp_path / "profile")
        )[0],
    )
    assert loaded == total - 1
