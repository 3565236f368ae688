"""Do the committed notebooks render for a student? Open each in JupyterLab, in a real browser.

Executing a notebook (papermill, nbval) proves its code runs; it does not prove that JupyterLab shows
it: a broken output, an image that does not decode, a dialog on opening. This check starts JupyterLab
headless, opens every committed notebook (the teacher's in ``notebooks/`` and the students' in
``student/``) in Chromium from the system packages (``apt-get install chromium``; nothing is
downloaded at run time) driven by Playwright, and for each one checks that

* it opens, in a tab of its own in the one JupyterLab page the check loads (autosave is off: the check
  never writes a notebook), with no error dialog and no uncaught page error;
* every cell of the file is rendered (JupyterLab's cell windowing is turned off for the check);
* every markdown cell is rendered as HTML, and every PNG output is an image the browser decoded
  (natural width > 0) and laid out (visible size > 0).

It saves a screenshot of each notebook (at its first figure, else its top) and a ``render_check.json``
with the counts, for the reader of the check::

    python -m fer_study.render_check            # into figures/render_check/
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from fer_utils.data import repo_root

#: Where the screenshots and the summary go, relative to the repository.
DEFAULT_OUT = "figures/render_check"
#: Chromium binaries looked for on PATH, in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class RenderCheckUnavailable(RuntimeError):
    """The browser or its driver is not installed."""


@dataclass
class Rendered:
    """What the browser showed of one notebook."""

    notebook: str
    cells: int
    rendered_cells: int
    markdown_cells: int
    rendered_markdown: int
    images: int
    visible_images: int
    seconds: float
    screenshot: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_chromium() -> str:
    """The system Chromium's path, or :class:`RenderCheckUnavailable` saying how to install it."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RenderCheckUnavailable("no Chromium found on PATH; install the system package: apt-get install chromium")


def expected(path: Path) -> dict[str, int]:
    """From the file: its cells, markdown cells and PNG outputs (what the browser must show)."""
    nb = nbformat.read(path, as_version=4)
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    return {"cells": len(nb.cells), "markdown": sum(c.cell_type == "markdown" for c in nb.cells), "images": images}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings_dir(folder: Path) -> Path:
    """JupyterLab user settings for the check: every cell rendered, no news or update pop-ups."""
    tracker = folder / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    notes = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    documents = folder / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    documents.parent.mkdir(parents=True, exist_ok=True)
    documents.write_text(json.dumps({"autosave": False}))  # the check opens notebooks, never writes them
    return folder


class _Lab:
    """A headless JupyterLab serving the repository, stopped on exit."""

    def __init__(self, root: Path, scratch: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(_settings_dir(scratch / "settings")),
               "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces")}
        self.log = open(scratch / "jupyterlab.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
             f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
             "--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True", "--allow-root"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RenderCheckUnavailable(f"JupyterLab stopped at start; see {scratch / 'jupyterlab.log'}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RenderCheckUnavailable("JupyterLab did not answer within 90 s")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, relative: str) -> str:
        return f"{self.base}/lab/tree/{relative}?token={self.token}&reset"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


_COUNT_JS = """() => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')].find(p => p.offsetParent !== null);
  if (!panel) return null;
  const imgs = [...panel.querySelectorAll('.jp-OutputArea-output img')];
  const shown = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return {
    path: shown && shown.context ? shown.context.path : null,
    cells: panel.querySelectorAll('.jp-Notebook .jp-Cell').length,
    markdown: panel.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown').length,
    images: imgs.length,
    visible: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length,
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 300)),
  };
}"""


def check_notebooks(paths: list[Path], out_dir: Path, timeout_s: float = 120) -> list[Rendered]:
    """Open each notebook (paths inside the repository) in JupyterLab in Chromium; screenshots go to
    ``out_dir``. Raises :class:`RenderCheckUnavailable` when Chromium or Playwright is missing."""
    chromium = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RenderCheckUnavailable("Playwright is not installed: pip install -e '.[browser]'") from None
    root = repo_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        lab = _Lab(root, Path(scratch))
        try:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)[:300]))
            for path in paths:
                results.append(_check_one(page, page_errors, lab, path, root, out_dir, timeout_s))
            browser.close()
        finally:
            lab.close()
    return results


def _check_one(page, page_errors: list[str], lab: _Lab, path: Path, root: Path, out_dir: Path,
               timeout_s: float) -> Rendered:
    relative = path.resolve().relative_to(root).as_posix()
    want = expected(path)
    page_errors.clear()
    started = time.perf_counter()
    seen = None
    if page.url.startswith(lab.base):  # JupyterLab is up in the page: open the next notebook in a tab of its own
        page.evaluate("async (path) => { await window.jupyterapp.commands.execute('docmanager:open', {path}); }",
                      relative)
    else:
        page.goto(lab.url(relative), wait_until="domcontentloaded", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # until every cell, markdown cell and image has rendered
        seen = page.evaluate(_COUNT_JS)
        if seen and seen["path"] == relative and seen["cells"] >= want["cells"] \
                and seen["markdown"] >= want["markdown"] and seen["visible"] >= want["images"]:
            break
        if seen and seen["dialogs"]:
            break
        page.wait_for_timeout(500)
    seconds = time.perf_counter() - started
    seen = seen or {"path": None, "cells": 0, "markdown": 0, "images": 0, "visible": 0, "dialogs": []}
    problems = [f"dialog: {text}" for text in seen["dialogs"]] + [f"page error: {e}" for e in page_errors]
    if seen["path"] != relative:
        problems.append(f"the open tab shows {seen['path']}, not {relative}")
    for key, found, label in (("cells", seen["cells"], "cells rendered"),
                              ("markdown", seen["markdown"], "markdown cells rendered"),
                              ("images", seen["visible"], "figures visible")):
        if found < want[key]:
            problems.append(f"{label}: {found} of {want[key]}")
    shot = out_dir / f"{path.parent.name}_{path.stem}.jpg"
    first_image = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output img").first  # in the open tab
    if want["images"] and seen["visible"]:
        first_image.scroll_into_view_if_needed()
    page.screenshot(path=str(shot), type="jpeg", quality=70)
    return Rendered(notebook=relative, cells=want["cells"], rendered_cells=seen["cells"],
                    markdown_cells=want["markdown"], rendered_markdown=seen["markdown"], images=want["images"],
                    visible_images=seen["visible"], seconds=round(seconds, 1),
                    screenshot=shot.relative_to(root).as_posix() if shot.is_relative_to(root) else str(shot),
                    problems=problems)


def committed_notebooks() -> list[Path]:
    """The teacher's and the students' notebooks, in that order."""
    from .classroom import STUDENT_DIR
    from .notebooks import notebooks

    return notebooks() + notebooks(repo_root() / STUDENT_DIR)


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_study.render_check [--out DIR] [NOTEBOOK ...]``."""
    parser = argparse.ArgumentParser(prog="python -m fer_study.render_check",
                                     description="Open the notebooks in JupyterLab in Chromium and check they render.")
    parser.add_argument("notebooks", nargs="*", help="default: every notebook in notebooks/ and student/")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"screenshots and summary (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    paths = [Path(p).resolve() for p in args.notebooks] or committed_notebooks()
    out = Path(args.out) if Path(args.out).is_absolute() else repo_root() / args.out
    try:
        results = check_notebooks(paths, out)
    except RenderCheckUnavailable as exc:
        print(f"render check: {exc}", file=sys.stderr)
        return 2
    for r in results:
        status = "ok" if r.ok else "FAILED: " + "; ".join(r.problems)
        print(f"{r.notebook}: {r.rendered_cells}/{r.cells} cells, {r.visible_images}/{r.images} figures, "
              f"{r.seconds:.1f} s -> {r.screenshot} {status}")
    summary = {"checked_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "browser": subprocess.run([find_chromium(), "--version"], capture_output=True, text=True).stdout.strip(),
               "notebooks": [asdict(r) | {"ok": r.ok} for r in results]}
    (out / "render_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
