"""Warm page navigation and a Messages filter change, timed in headless Chromium (issue 18: <= 300 ms).

Starts the app (``streamlit run app/streamlit_app.py``, ``EMBEDDED_WORKER=false``) against an existing
database (the 10M-message demo: ``python -m app seed-demo --messages 10000000``), signs in as a demo
user and clicks through the sidebar. Each sample is timed inside the browser, from the click until
the target page's title and its last element are drawn, no element of the previous run is left
(stale) and the script run has finished (``data-test-script-state`` back to ``notRunning``).

The floor is the same round trip on a bare Streamlit app served the same way (st.App) in the same run:
two pages that draw a title and one line each (Streamlit's own cost of a click -> rerun -> redraw).

    .venv/bin/python bench/bench_browser.py --database-url postgresql+psycopg://clinic_app@127.0.0.1:5432/demo10m
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, PAGE_IS_DRAWN, _wait_until_healthy, stop  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://clinic_app@127.0.0.1:5432/demo10m"
PAGES = ("Dashboard", "Messages", "Patients", "Bulk send", "Analytics", "Templates", "Audit log")

# Runs in the page: click, then resolve with the milliseconds until the target is drawn and the run is over.
MEASURE_JS = """
async ({clickSelector, clickText, title, marker, urlPart, changed}) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const main = () => document.querySelector('[data-testid="stMain"]');
  const changedText = () => [...main().querySelectorAll(changed)].map(el => el.textContent).join('|');
  const before = changedText();
  const target = [...document.querySelectorAll(clickSelector)]
    .find(el => el.textContent.trim() === clickText || el.textContent.includes(clickText));
  if (!target) throw new Error('nothing to click: ' + clickText);
  // A run short enough may never show 'running' (React batches it), so a new run is recognised by
  // what it draws: ``changed`` (the title, a count) differs from before the click.
  const drawn = () => {
    if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (urlPart !== null && !(decodeURIComponent(location.search) + '&').includes(urlPart + '&')) return false;
    const root = main();
    if (!root || root.querySelector('[data-stale="true"]')) return false;
    if (![...root.querySelectorAll('h1')].some(h => h.textContent.trim() === title)) return false;
    if (changedText() === before) return false;
    return marker === null || root.textContent.includes(marker);
  };
  const started = performance.now();
  target.click();
  return await new Promise((resolve, reject) => {
    const tick = () => {
      if (drawn()) { resolve(performance.now() - started); return; }
      if (performance.now() - started > 30000) {
        const root = main();
        reject(new Error(`timeout: ${title}: state ${app.getAttribute('data-test-script-state')}, `
          + `stale ${root.querySelectorAll('[data-stale="true"]').length}, `
          + `titles ${[...root.querySelectorAll('h1')].map(h => h.textContent).join('/')}, `
          + `changed ${changedText() !== before}, marker ${marker === null || root.textContent.includes(marker)}`));
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}
"""

FLOOR_APP = '''
import streamlit as st

if __name__ != "__main__":  # served like the app's entry: through Streamlit's ASGI app (st.App)
    app = st.App(__file__)
else:
    def first() -> None:
        st.title("Floor one", anchor=False)
        st.write("An empty page.")

    def second() -> None:
        st.title("Floor two", anchor=False)
        st.write("An empty page.")

    st.navigation([st.Page(first, title="Floor one", url_path="one"),
                   st.Page(second, title="Floor two", url_path="two")]).run()
'''


@contextlib.contextmanager
def streamlit(script: Path, port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log, timeout=90)
        yield url
    finally:
        stop(process)


def measure(page, click_selector: str, click_text: str, title: str, marker: str | None,  # type: ignore[no-untyped-def]
            *, changed: str = "h1", url_part: str | None = None) -> float:
    """Milliseconds from clicking ``click_text`` until ``title``'s page shows ``marker``, the text of
    ``changed`` differs from before the click, nothing stale is left and the script run is over."""
    try:
        return float(page.evaluate(MEASURE_JS, {"clickSelector": click_selector, "clickText": click_text,
                                                "title": title, "marker": marker, "urlPart": url_part,
                                                "changed": changed}))
    except Exception:
        shot = Path(tempfile.gettempdir()) / "bench_browser_failed.png"
        page.screenshot(path=shot, full_page=True)
        print(f"failed; the screen is in {shot}", file=sys.stderr)
        raise


def nav(page, title: str) -> float:  # type: ignore[no-untyped-def]
    return measure(page, '[data-testid="stSidebarNavLink"]', title, title, PAGE_IS_DRAWN.get(title))


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (f"{name:<34} median {statistics.median(ordered):7.1f} ms   p90 {p90:7.1f} ms   "
            f"min {ordered[0]:7.1f}   max {ordered[-1]:7.1f}   n={len(ordered)}")


def pick_channel(page, label: str) -> None:  # type: ignore[no-untyped-def]
    """Set the Messages filter form's Channel box to just ``label`` (no rerun: it is inside a form)."""
    box = page.locator('[data-testid="stMultiSelect"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]').get_by_text("Channel", exact=True))
    box.locator("input").click()
    for _ in range(4):  # Backspace removes the last chosen value
        page.keyboard.press("Backspace")
    page.keyboard.type(label)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def run(args: argparse.Namespace) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench_browser_"))
    floor_script = work / "floor_app.py"
    floor_script.write_text(FLOOR_APP)
    env = {**os.environ, "DATABASE_URL": args.database_url, "EMBEDDED_WORKER": "false",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("REDIS_URL", None)
    results: dict[str, list[float]] = {}
    print(f"load average before: {os.getloadavg()}", flush=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        with streamlit(floor_script, args.port + 1, env, work / "floor.log") as url:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(url)
            page.get_by_role("heading", name="Floor one").wait_for()
            for i in range(args.samples + 2):
                for title in ("Floor two", "Floor one"):
                    took = nav(page, title)
                    if i >= 2:
                        results.setdefault("floor: empty page -> empty page", []).append(took)
            page.context.close()

        with streamlit(ROOT / "app" / "streamlit_app.py", args.port, env, work / "app.log") as url:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_label("Username", exact=True).fill(args.user)
            page.get_by_label("Password", exact=True).fill(args.password)
            page.get_by_role("button", name="Sign in").click()
            try:
                page.get_by_role("heading", name="Dashboard", level=1).wait_for()
            except PlaywrightTimeout:
                page.screenshot(path=work / "sign_in.png")
                raise SystemExit(f"no Dashboard after signing in (see {work}/sign_in.png and app.log)") from None
            pages = [p for p in args.pages if page.locator('[data-testid="stSidebarNavLink"]').filter(
                has_text=p).count()]
            cycle = pages[1:] + pages[:1]
            for i in range(args.samples + args.warmup):
                previous = pages[0]
                for title in cycle:
                    took = nav(page, title)
                    if i >= args.warmup:
                        results.setdefault(f"{previous} -> {title}", []).append(took)
                        results.setdefault("all navigation", []).append(took)
                    previous = title
            if "Messages" in pages:
                nav(page, "Messages")
                for i in range(args.samples + args.warmup):
                    for label, param in (("SMS", "channel=sms"), ("WhatsApp", "channel=whatsapp")):
                        pick_channel(page, label)
                        took = measure(page, '[data-testid="stFormSubmitButton"] button', "Apply filters",
                                       "Messages", PAGE_IS_DRAWN.get("Messages"), url_part=param,
                                       changed='[data-testid="stCaptionContainer"]')
                        if i >= args.warmup:
                            results.setdefault("Messages: channel filter change", []).append(took)
            page.context.close()
        browser.close()

    print(f"\n{args.samples} samples per transition after {args.warmup} warm-up round(s); "
          f"user {args.user}; {args.database_url.rsplit('@', 1)[-1]}")
    for name, samples in results.items():
        print(summary(name, samples))
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="the app's DATABASE_URL (a seeded demo)")
    parser.add_argument("--user", default="alnoor.admin", help="a demo login (app/demo/content.py)")
    parser.add_argument("--password", default="demo-password-1")
    parser.add_argument("--samples", type=int, default=15, help="timed rounds per transition")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (caches, imports)")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--pages", nargs="+", default=list(PAGES), help="menu titles to cycle through")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
