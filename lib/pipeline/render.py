"""Render the executed report notebook as one self-contained HTML file, executed notebooks beside it."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from lib.analysis.tables import export as export_tables
from lib.core.products import write_bytes, write_text
from lib.pipeline import layout
from lib.pipeline.config import Study
from lib.pipeline.dag import Task, reports_dir

# Code cells are hidden until the reader asks for them; everything is inline (no remote scripts).
TOGGLE = """
<style>body:not(.show-code) .jp-CodeCell .jp-InputArea { display: none; }
body:not(.show-code) .jp-OutputPrompt { visibility: hidden; }
#code-toggle { position: fixed; top: 8px; right: 12px; z-index: 100; }</style>
<button id="code-toggle" onclick="document.body.classList.toggle('show-code')">show / hide code</button>
"""


def report_path(s: Study) -> Path:
    """reports/report.html for the paper profile, reports/report-<profile>.html otherwise."""
    return reports_dir() / ("report.html" if s.profile == "paper" else f"report-{s.profile}.html")


def notebooks_folder_name(s: Study) -> str:
    """Folder beside the report holding the executed notebooks (linked from the report)."""
    return f"{report_path(s).stem}_notebooks"


def report_notebook(tasks: dict[str, Task]):
    """The report as one notebook: the figures notebook, then the extension's cells when the study has
    them, then the figures notebook's closing cells (tagged report-tail: the drill-down links)."""
    import nbformat

    report = nbformat.read(tasks["figures"].executed, as_version=4)
    if "extension" in tasks:
        tail = [c for c in report.cells if "report-tail" in c.metadata.get("tags", [])]
        extension = nbformat.read(tasks["extension"].executed, as_version=4).cells
        report.cells = [c for c in report.cells if c not in tail] + extension + tail
    return report


def to_html(notebook) -> str:
    """nbconvert HTML of a notebook node, images embedded, injected-parameters cells removed, code collapsed, its
    stderr left out and its sections and figures numbered beside a table of contents (lib.pipeline.layout)."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = ("injected-parameters",)
    config.TagRemovePreprocessor.remove_input_tags = ("parameters",)
    config.TagRemovePreprocessor.enabled = True
    config.HTMLExporter.embed_images = True
    exporter = HTMLExporter(config=config, template_name="lab")
    layout.quiet(notebook)
    body, _ = exporter.from_notebook_node(notebook)
    # The lab template pulls require.js and MathJax from a CDN; the report needs neither (no widgets,
    # no LaTeX), and it must read offline.
    body = re.sub(r'<script[^>]*src="https?://[^"]*"[^>]*>\s*</script>', "", body)
    return layout.page(body.replace("</body>", TOGGLE + "</body>", 1))


def render_key(tasks: dict[str, Task]) -> str:
    """What the HTML depends on: the executed notebooks (the figures step's key covers them all) and how this module
    and the layout render them."""
    code = Path(__file__).read_bytes() + Path(layout.__file__).read_bytes()
    return f"{tasks['figures'].key}-{hashlib.sha256(code).hexdigest()[:12]}"


def up_to_date(study, tasks: dict[str, Task]) -> bool:
    """Whether the report was rendered from these tasks' products by this code (then `render` does no work)."""
    stamp = report_path(study).with_suffix(".key")
    return report_path(study).exists() and stamp.exists() and stamp.read_text() == render_key(tasks)


def render(study, tasks: dict[str, Task]) -> Path:
    """Write the HTML report and copy every executed notebook beside it; no work when up to date."""
    report = report_path(study)
    if up_to_date(study, tasks):
        print(f"{report} is up to date")
        return report
    key = render_key(tasks)
    folder = report.with_name(notebooks_folder_name(study))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for task in tasks.values():
        shutil.copyfile(task.executed, folder / f"{task.name}.ipynb")
    export(study.profile, tasks)
    write_text(to_html(report_notebook(tasks)), report)
    write_text(key, report.with_suffix(".key"))
    print(f"report: {report}")
    return report


def export(profile: str, tasks: dict[str, Task]) -> None:
    """Each step's exported tables (CSV, + Parquet with pyarrow) to reports/results/<profile>/ and its figures
    (PNG, SVG) to reports/figures/<profile>/, as the registry declares them: the results in forms other tools read."""
    results, figures = (reports_dir() / kind / profile for kind in ("results", "figures"))
    for folder in (results, figures):
        shutil.rmtree(folder, ignore_errors=True)  # nothing stale from an earlier run survives
    export_tables([t.file(name) for t in tasks.values() for name in t.step.exports], results)
    for t in tasks.values():
        if t.step.figures:
            for image in sorted((t.folder / "figures").glob("*.*")):
                write_bytes(image.read_bytes(), figures / image.name)
