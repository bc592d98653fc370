"""The README's leaderboard screenshot (docs/leaderboard.png) from the committed entry records
alone, as a fresh clone's `make site` builds it, rendered by Debian's Chromium.

    .venv/bin/python tools/screenshot_site.py [--suite digits] [--out docs/leaderboard.png]

Needs the test extra (playwright) and /usr/bin/chromium (`make browser`); nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="digits", help="the suite section to show first")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "leaderboard.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "lsmia_bench.cli", "leaderboard", "build",
                        "--records-only", "--out", str(site)], check=True, cwd=tmp)
        with sync_playwright() as playwright:
            # A persistent context is playwright's way to give Chromium a fresh profile folder.
            browser = playwright.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"), executable_path="/usr/bin/chromium",
                args=CHROMIUM_ARGS, viewport={"width": args.width, "height": args.height})
            page = browser.new_page()
            page.goto((site / "index.html").as_uri())
            anchor = page.locator(f"#suite-{args.suite}")
            if anchor.count():
                anchor.first.scroll_into_view_if_needed()
            page.screenshot(path=str(args.out))
            browser.close()
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
