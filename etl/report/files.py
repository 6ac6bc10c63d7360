"""Report files: a run's report as JSON and as the HTML page, side by side in a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.report.digest import OutcomeDigest
from etl.report.html import render_html

if TYPE_CHECKING:
    import pandas as pd


def write_report_files(
    report: dict[str, Any],
    outcomes: pd.DataFrame | OutcomeDigest,
    rejects: pd.DataFrame | None,
    out_dir: Path,
    reject_total: int | None = None,
) -> list[Path]:
    """``run-<id>.json`` and ``run-<id>.html`` (``dry-run.*`` for a dry run) in ``out_dir``
    (``render_html`` says what ``outcomes``, ``rejects`` and ``reject_total`` may be)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"run-{report['run_id']}" if report.get("run_id") is not None else "dry-run"
    json_path, html_path = out_dir / f"{name}.json", out_dir / f"{name}.html"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    html_path.write_text(
        render_html(report, outcomes, rejects, reject_total=reject_total), encoding="utf-8"
    )
    return [json_path, html_path]
