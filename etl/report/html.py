"""The run report as one self-contained HTML page: summary, charts and exception lists.

The page opens offline and loads nothing: inline CSS, charts drawn here as inline SVG, no
JavaScript, and a Content-Security-Policy that forbids anything else. Every value that can come
from an export (names, emails, reasons, raw text, departments, agents, file names, owner and pool
keys, warnings) goes through ``_e`` (``html.escape`` with quotes, control characters replaced), so
a visitor called ``<script>alert(1)</script>`` is shown as text, in tables and in SVG alike.

A chart or list is drawn from frames only when it has rows: the page of a run without outcomes
or rejects (an unchanged sync's) is drawn without loading pandas, the same page as from empty
frames.
"""

from __future__ import annotations

import html
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.report.digest import LIST_LIMIT, OutcomeDigest
from etl.vocab import OUTCOMES, SELL_KEYS, WRITE_KEYS

if TYPE_CHECKING:
    import pandas as pd

RAW_LIMIT = 400  # characters of a reject's raw text shown
TOP_N = 15  # bars per "by department / agent / owner" chart before "other"

# Okabe-Ito colours: told apart with the common colour-vision deficiencies, fixed per outcome.
OUTCOME_COLOURS = {
    "matched": "#009e73",
    "lead_created": "#0072b2",
    "matched_new_lead": "#56b4e9",
    "lead_skipped": "#e69f00",
    "no_email": "#a0a0a0",
    "invalid_email": "#cc79a7",
    "rejected": "#d55e00",
    "removed": "#000000",
}
_OTHER_COLOUR = "#6e7781"
_LEADS_COLOUR = "#0072b2"

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


# -- escaping -----------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    pd = sys.modules.get("pandas")  # (not loaded: no value is pandas' NA or NaT)
    return pd is not None and (value is pd.NA or value is pd.NaT)


def _clean(value: Any) -> str:
    """Text safe to put in a document: no control characters or lone surrogates."""
    return "" if _missing(value) else _CONTROL.sub("\ufffd", str(value))


def _e(value: Any) -> str:
    """Escaped for HTML text and quoted attributes (also inside inline SVG)."""
    return html.escape(_clean(value), quote=True)


def _short(value: Any, limit: int) -> str:
    text = _clean(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _num(value: Any) -> str:
    if _missing(value):
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{int(value):,}"
    return _e(value)


# -- the page -----------------------------------------------------------------------------------


def render_html(
    report: dict[str, Any],
    outcomes: pd.DataFrame | OutcomeDigest,
    rejects: pd.DataFrame | None,
    comparison: dict[str, Any] | None = None,
    reject_total: int | None = None,
) -> str:
    """One HTML5 document for a run: summary, charts, exception lists (and a comparison).

    ``outcomes``: the run's outcome rows, or their ``OutcomeDigest`` (a store's, read in
    bounded fetches: ``OutcomeDigest.from_store``). ``rejects``: its rejects, or their first
    LIST_LIMIT when ``reject_total`` says how many there are (None: no reject).
    """
    digest = outcomes if isinstance(outcomes, OutcomeDigest) else OutcomeDigest.of(outcomes)
    run_label = (
        f"run {_clean(report.get('run_id'))}" if report.get("run_id") is not None else "dry run"
    )
    title = f"chatsell {run_label} \u2013 {_clean(report.get('status')) or 'report'}"
    sections = [
        _summary(report, run_label),
        _push(report) if "push" in report else "",
        _comparison(comparison) if comparison else "",
        _charts(report, digest),
        _exceptions(digest, rejects, reject_total),
    ]
    nav = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in (
            ("summary", "Summary"),
            ("comparison", "Comparison"),
            ("charts", "Charts"),
            ("exceptions", "Exceptions"),
        )
        if anchor != "comparison" or comparison
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header class="top"><div class="wrap"><span class="brand">chatsell</span>'
        f"<nav>{nav}</nav></div></header>\n"
        f'<main class="wrap">\n{"".join(sections)}\n</main>\n'
        '<footer class="wrap">Generated by chatsell. This page loads nothing from the network.'
        "</footer>\n</body>\n</html>\n"
    )


# -- summary ------------------------------------------------------------------------------------


def _badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{_e(text)}</span>'


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> str:
    """An ISO time from the report, shown as ``2026-11-25 11:12:22 UTC`` when it can be read."""
    when = _parse_time(value)
    if when is None:
        return _e(value) or "\u2013"
    if when.utcoffset() is not None:
        when = when.astimezone(UTC)
        return _e(when.strftime("%Y-%m-%d %H:%M:%S UTC"))
    return _e(when.strftime("%Y-%m-%d %H:%M:%S"))


def _duration(start: Any, end: Any) -> str:
    began, ended = _parse_time(start), _parse_time(end)
    try:
        seconds = (ended - began).total_seconds()  # type: ignore[operator]
    except TypeError:  # a time missing, or one naive and one aware
        return "\u2013"
    if seconds < 0:
        return "\u2013"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """Label and value pairs, both already escaped."""
    body = "".join(f'<tr><th scope="row">{key}</th><td>{value}</td></tr>' for key, value in rows)
    return f'<table class="kv">{body}</table>'


def _push(report: dict[str, Any]) -> str:
    """A push's rows by kind and outcome, and what its requests came to."""
    push = report.get("push") or {}
    states = ("sent", "failed", "skipped")
    kinds = sorted({k for state in states for k in (push.get(state) or {})})
    head = "".join(f'<th scope="col">{_e(state)}</th>' for state in states)
    body = "".join(
        f'<tr><th scope="row">{_e(kind)}</th>'
        + "".join(f"<td>{_num((push.get(state) or {}).get(kind, 0))}</td>" for state in states)
        + "</tr>"
        for kind in kinds
    )
    table = f'<table class="kv"><tr><th></th>{head}</tr>{body}</table>'
    rest = _kv_table(
        (_e(key.replace("_", " ")), _num(push.get(key)))
        for key in ("pending", "waiting", "requests", "retries", "rate_limited")
    )
    destination = _e(report.get("destination") or "")
    return f'<section id="push"><h2>Push to {destination}</h2>{table}{rest}</section>'


def _summary(report: dict[str, Any], run_label: str) -> str:
    status = _clean(report.get("status")) or "unknown"
    status_tone = {"succeeded": "good", "failed": "bad"}.get(status, "warn")
    mode = _clean(report.get("mode")) or "unknown"
    accounting = report.get("accounting") or {}
    if not accounting:
        balance_badge = _badge("no accounting", "warn")
    elif accounting.get("balanced"):
        balance_badge = _badge("balanced", "good")
    else:
        balance_badge = _badge("NOT BALANCED", "bad")
    badges = [_badge(status, status_tone), _badge(mode, "plain"), balance_badge]
    if report.get("run_id") is None:
        badges.append(_badge("not stored: a dry run writes nothing", "plain"))
    head = (
        f'<section id="summary"><h1>Reconciliation report <span class="muted">{_e(run_label)}'
        f'</span></h1><p class="lede">{" ".join(badges)}</p>'
    )
    if report.get("error"):
        head += f'<p class="error"><strong>Error:</strong> {_e(report["error"])}</p>'

    run_id = report.get("run_id")
    run_rows = [
        ("run id", _e(run_id) if run_id is not None else "(dry run)"),
        ("mode", _e(mode)),
        ("status", _e(status)),
        ("started", _time(report.get("started_at"))),
        ("finished", _time(report.get("finished_at"))),
        ("duration", _duration(report.get("started_at"), report.get("finished_at"))),
    ]
    chats_read, total = accounting.get("chats_read"), accounting.get("outcomes_total")
    gap = ""
    if isinstance(chats_read, int) and isinstance(total, int) and chats_read != total:
        more = "more" if total > chats_read else "fewer"
        gap = (
            f'<p class="error">{_num(abs(chats_read - total))} {more} outcomes than chats read.</p>'
        )
    exception_rows = [
        ("multi-match emails", _num(report.get("multi_match_emails"))),
        ("rejects", _num(report.get("rejects"))),
        ("warnings", _num(len(report.get("warnings") or []))),
    ]
    accounting_card = (
        '<div class="card accounting"><h2>Accounting</h2>'
        f'<div class="big">{_num(total)} <span class="muted">of</span> {_num(chats_read)}</div>'
        f'<p class="muted">chats read have an outcome</p><p>{balance_badge}</p>{gap}'
        f"{_kv_table(exception_rows)}</div>"
    )
    inputs = report.get("inputs") or {}
    sell = inputs.get("sell_records") or {}
    input_rows = [
        (_e(str(key).replace("_", " ")), _num(value))
        for key, value in inputs.items()
        if not isinstance(value, dict)
    ] + [
        (f"sell {_e(key)}", _num(sell[key]))
        for key in [*SELL_KEYS, *sorted(set(sell) - set(SELL_KEYS))]
        if key in sell
    ]
    writes = report.get("writes") or {}
    write_rows = [
        (_e(str(key).replace("_", " ")), _num(writes[key]))
        for key in [*WRITE_KEYS, *sorted(set(writes) - set(WRITE_KEYS))]
        if key in writes
    ]
    cards = (
        '<div class="cards">'
        f'<div class="card"><h2>Run</h2>{_kv_table(run_rows)}</div>'
        f"{accounting_card}"
        f'<div class="card"><h2>Inputs</h2>{_kv_table(input_rows) if input_rows else _none()}</div>'
        f'<div class="card"><h2>Writes</h2>{_kv_table(write_rows) if write_rows else _none()}</div>'
        "</div>"
    )
    return head + cards + _outcome_table(report) + _warnings(report) + "</section>\n"


def _outcome_table(report: dict[str, Any]) -> str:
    counts = report.get("outcomes") or {}
    names = [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]
    total = sum(int(v) for v in counts.values() if not _missing(v)) or 0
    rows = []
    for name in names:
        if name not in counts:
            continue
        count = int(counts[name]) if not _missing(counts[name]) else 0
        share = count / total * 100 if total else 0.0
        colour = OUTCOME_COLOURS.get(name, _OTHER_COLOUR)
        rows.append(
            f'<tr><th scope="row"><span class="swatch" style="background:{colour}"></span>'
            f'{_e(name)}</th><td class="n">{_num(count)}</td><td class="n">{share:.1f}%</td>'
            f'<td class="barcell"><span class="bar" style="width:{share:.2f}%;'
            f'background:{colour}"></span></td></tr>'
        )
    if not rows:
        return f'<div class="card wide"><h2>Outcomes</h2>{_none()}</div>'
    return (
        '<div class="card wide"><h2>Outcomes</h2><table class="outcomes">'
        '<thead><tr><th scope="col">outcome</th><th scope="col" class="n">chats</th>'
        '<th scope="col" class="n">share</th><th scope="col"><span class="sr">bar</span></th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody>"
        f'<tfoot><tr><th scope="row">total</th><td class="n">{_num(total)}</td>'
        "<td></td><td></td></tr></tfoot></table></div>"
    )


def _warnings(report: dict[str, Any]) -> str:
    warnings = report.get("warnings") or []
    if not warnings:
        return '<div class="card wide"><h2>Warnings</h2><p class="muted">No warnings.</p></div>'
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings[:LIST_LIMIT])
    return (
        f'<div class="card wide warn-card"><h2>Warnings ({_num(len(warnings))})</h2>'
        f"<ul>{items}</ul>{_more(len(warnings))}</div>"
    )


def _none(text: str = "none") -> str:
    return f'<p class="muted">{_e(text)}</p>'


def _more(total: int, limit: int = LIST_LIMIT) -> str:
    if total <= limit:
        return ""
    return f'<p class="more">{_num(total - limit)} more not shown.</p>'


# -- comparison ---------------------------------------------------------------------------------


def _delta(value: Any) -> str:
    if _missing(value) or not isinstance(value, int | float) or isinstance(value, bool):
        return "\u2013"
    if value == 0:
        return '<span class="muted">0</span>'
    sign = "+" if value > 0 else "\u2212"
    return f"<strong>{sign}{abs(int(value)):,}</strong>"


def _comparison(comparison: dict[str, Any]) -> str:
    current = comparison.get("current") or {}
    previous = comparison.get("previous") or {}

    def label(run: dict[str, Any]) -> str:
        run_id = run.get("run_id")
        return f"run {_e(run_id)}" if run_id is not None else "dry run"

    tables = []
    for group, caption in (
        ("outcomes", "Outcomes"),
        ("writes", "Writes"),
        ("inputs", "Inputs"),
        ("sell_records", "Sell records"),
        ("exceptions", "Exceptions"),
    ):
        rows = comparison.get(group) or {}
        if not rows:
            continue
        body = "".join(
            f'<tr><th scope="row">{_e(str(key).replace("_", " "))}</th><td class="n">{_num(v.get("previous"))}</td>'
            f'<td class="n">{_num(v.get("current"))}</td><td class="n">{_delta(v.get("delta"))}</td></tr>'
            for key, v in rows.items()
        )
        tables.append(
            f'<div class="card"><h3>{caption}</h3><table class="compare"><thead><tr>'
            f'<th scope="col"></th><th scope="col" class="n">{label(previous)}</th>'
            f'<th scope="col" class="n">{label(current)}</th><th scope="col" class="n">change</th>'
            f"</tr></thead><tbody>{body}</tbody></table></div>"
        )
    new_rejects = comparison.get("new_rejects")
    if new_rejects is None:
        rejects_html = _none("New rejects were not compared.")
    elif not new_rejects:
        rejects_html = _none(f"No rejects that {label(previous)} did not have.")
    else:
        import pandas as pd  # noqa: PLC0415

        rejects_html = _reject_table(pd.DataFrame(new_rejects))
    balanced = comparison.get("balanced") or {}
    balance = ""
    if balanced:
        before, now = (
            "balanced" if balanced.get(side) else "NOT BALANCED" for side in ("previous", "current")
        )
        balance = f" Accounting: {before} \u2192 {now}."
    return (
        f'<section id="comparison"><h2>Compared with {label(previous)}</h2>'
        f'<p class="muted">{label(previous)}: {_e(previous.get("mode"))}, '
        f"{_e(previous.get('status'))}, started {_time(previous.get('started_at'))}.{balance}</p>"
        f'<div class="cards compare-cards">{"".join(tables)}</div>'
        f'<div class="card wide"><h3>New rejects</h3>{rejects_html}</div></section>\n'
    )


# -- charts -------------------------------------------------------------------------------------

_CHART_W = 960  # the time chart, across the page
_HALF_W = 480  # the "by ..." charts, two to a row
_CHAR_W = 6.4  # average width of a 12px system-font character, for laying out legends


def _charts(report: dict[str, Any], digest: OutcomeDigest) -> str:
    assignments = report.get("assignments") or {}
    by_department = _chart_by(digest.by_department, "department", "departments")
    by_agent = _chart_by(digest.by_agent, "agent", "agents")
    by_owner = _chart_counts(assignments.get("by_owner"), "owner", "owners", "owner (Sell user)")
    by_pool = _chart_counts(assignments.get("by_pool"), "pool", "pools", "pool")
    by_rule = _chart_counts(assignments.get("by_rule"), "rule", "rules", "assignment rule")
    figures = [
        _figure("Outcomes over time", _chart_over_time(digest), wide=True),
        _figure("Outcomes by department", by_department),
        _figure("Outcomes by agent (first agent of the chat)", by_agent),
        _figure("New leads by owner", by_owner),
        _figure("New leads by pool", by_pool),
        _figure("New leads by assignment rule", by_rule),
    ]
    return (
        '<section id="charts"><h2>Charts</h2>'
        f'<div class="charts">{"".join(figures)}</div></section>\n'
    )


def _figure(caption: str, body: str, wide: bool = False) -> str:
    return f'<figure class="chart-box{" wide" if wide else ""}"><figcaption>{caption}</figcaption>{body}</figure>'


def _svg(key: str, title: str, desc: str, width: float, height: float, marks: str) -> str:
    return (
        f'<svg class="chart" data-chart="{key}" role="img" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" aria-labelledby="{key}-title {key}-desc">'
        f'<title id="{key}-title">{_e(title)}</title><desc id="{key}-desc">{_e(desc)}</desc>'
        f"{marks}</svg>"
    )


def _placeholder(key: str, title: str, message: str = "no data", width: int = _HALF_W) -> str:
    height = 120
    marks = (
        f'<rect class="frame" x="1" y="1" width="{width - 2}" height="{height - 2}" rx="6"/>'
        f'<text class="empty" x="{width / 2:.0f}" y="{height / 2 + 5:.0f}" '
        f'text-anchor="middle">{_e(message)}</text>'
    )
    return _svg(key, f"{title}: {message}", message, width, height, marks)


def _nice_scale(top: float, ticks: int = 5) -> tuple[int, int]:
    """(axis maximum, tick step): round numbers covering ``top``, whole chats only."""
    if top <= 0:
        return 1, 1
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    step = max(1, math.ceil(step))
    return int(math.ceil(top / step) * step), step


def _legend(
    series: Sequence[tuple[str, str]], x0: float, y0: float, width: float
) -> tuple[str, float]:
    """Swatches and names in rows across ``width``; returns the marks and the height used."""
    marks, x, y = [], x0, y0
    for name, colour in series:
        item = 14 + len(name) * _CHAR_W + 18
        if x > x0 and x + item > x0 + width:
            x, y = x0, y + 20
        marks.append(
            f'<g class="legend-item"><rect x="{x:.1f}" y="{y:.1f}" width="11" height="11" '
            f'rx="2" fill="{colour}"/><text x="{x + 15:.1f}" y="{y + 10:.1f}">{_e(name)}</text></g>'
        )
        x += item
    return f'<g class="legend">{"".join(marks)}</g>', (y - y0) + 20


def _series(outcome_names: Iterable[str]) -> list[tuple[str, str]]:
    present = set(outcome_names)
    names = [o for o in OUTCOMES if o in present] + sorted(present - set(OUTCOMES))
    return [(name, OUTCOME_COLOURS.get(name, _OTHER_COLOUR)) for name in names]


def _chart_over_time(digest: OutcomeDigest) -> str:
    key, title = "outcomes-over-time", "Outcomes over time"
    undated = digest.undated
    note = (
        f'<p class="note">{_num(undated)} chat{"s" if undated != 1 else ""} without a start time '
        "(rejected records) not shown.</p>"
        if undated
        else ""
    )
    if _no_rows(digest.by_day) or digest.first_started is None or digest.last_started is None:
        return _placeholder(key, title, width=_CHART_W) + note
    import pandas as pd  # noqa: PLC0415

    days = digest.by_day.index
    span_days = (digest.last_started - digest.first_started).days
    if span_days <= 92:
        bucket, freq, unit, fmt = days, "D", "day", "%Y-%m-%d"
    elif span_days <= 2 * 366:
        bucket = days.to_period("W-SUN").start_time
        freq, unit, fmt = "W-MON", "week from Monday", "%Y-%m-%d"
    else:
        bucket = days.to_period("M").start_time
        freq, unit, fmt = "MS", "month", "%Y-%m"
    counts = digest.by_day.groupby(bucket).sum()
    dated = int(counts.to_numpy().sum())
    buckets = pd.date_range(counts.index.min(), counts.index.max(), freq=freq)
    series = _series(counts.columns)
    counts = counts.reindex(index=buckets, columns=[n for n, _ in series], fill_value=0)

    width = _CHART_W
    left, right = 56, 16
    legend, legend_h = _legend(series, left, 8, width - left - right)
    top, bottom, plot_h = 8 + legend_h + 10, 54, 220
    height = top + plot_h + bottom
    plot_w = width - left - right
    y_max, step = _nice_scale(float(counts.sum(axis=1).max()))

    def y_of(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    marks = [legend]
    for tick in range(0, y_max + 1, step):
        y = y_of(tick)
        marks.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    slot = plot_w / len(buckets)
    bar_w = min(slot * 0.8 if slot >= 3 else slot, 48)
    labels_every = max(1, math.ceil(len(buckets) / max(1, plot_w // 84)))
    bars = []
    for i, (when, row) in enumerate(counts.iterrows()):
        x = left + i * slot + (slot - bar_w) / 2
        label = when.strftime(fmt)
        base = 0
        for name, colour in series:
            value = int(row[name])
            if not value:
                continue
            y1, y0 = y_of(base + value), y_of(base)
            bars.append(
                f'<rect x="{x:.2f}" y="{y1:.2f}" width="{bar_w:.2f}" height="{y0 - y1:.2f}" '
                f'fill="{colour}"><title>{label} \u00b7 {_e(name)}: {value:,}</title></rect>'
            )
            base += value
        if i % labels_every == 0:
            marks.append(
                f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{label}</text>'
            )
    marks.append(f'<g class="bars">{"".join(bars)}</g>')
    marks.append(
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
        f'<text class="axis-title" x="{left + plot_w / 2:.0f}" y="{height - 10}" '
        f'text-anchor="middle">{unit} (UTC)</text>'
        f'<text class="axis-title" transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">chats per {unit.split()[0]}</text>'
    )
    first, last = buckets[0].strftime(fmt), buckets[-1].strftime(fmt)
    desc = (
        f"Chats per {unit} by outcome, stacked, {first} to {last}: {dated:,} chats. "
        "The numbers are in the table below."
    )
    svg = _svg(key, title, desc, width, height, "".join(marks))
    table = _data_table(counts, unit, lambda when: when.strftime(fmt))
    return svg + note + table


def _top(counts: pd.DataFrame, what: str) -> pd.DataFrame:
    """The TOP_N rows with the most chats, the rest summed into one "other" row."""
    import pandas as pd  # noqa: PLC0415

    totals = counts.sum(axis=1)
    order = sorted(counts.index, key=lambda label: (-int(totals[label]), str(label)))
    counts = counts.loc[order]
    if len(counts) <= TOP_N + 1:
        return counts
    head, rest = counts.iloc[:TOP_N], counts.iloc[TOP_N:]
    other = rest.sum().to_frame().T
    other.index = [f"other ({len(rest):,} {what})"]
    return pd.concat([head, other])


def _chart_by(counts: pd.DataFrame | None, column: str, what: str) -> str:
    """Chats per ``column`` label (``OutcomeDigest.by_department`` / ``by_agent``) by outcome."""
    key, title = f"outcomes-by-{column}", f"Outcomes by {column}"
    if _no_rows(counts):
        return _placeholder(key, title)
    series = _series(counts.columns)
    counts = _top(counts[[name for name, _ in series]], what)
    desc = f"Chats by {column}, stacked by outcome"
    return _hbars(key, title, counts, series, "chats", desc, column)


def _chart_counts(counts: dict[str, Any] | None, group: str, what: str, index_name: str) -> str:
    """New leads per owner, pool or rule (the report's ``assignments``)."""
    key, title = f"leads-by-{group}", f"New leads by {index_name}"
    rows = {str(k): int(v) for k, v in (counts or {}).items() if not _missing(v) and int(v) > 0}
    if not rows:
        return _placeholder(key, title)
    import pandas as pd  # noqa: PLC0415

    frame = _top(pd.DataFrame({"leads": rows}), what)
    series = [("leads", _LEADS_COLOUR)]
    axis = "new leads assigned"
    return _hbars(key, title, frame, series, axis, title, index_name, legend=False)


def _hbars(
    key: str,
    title: str,
    counts: pd.DataFrame,
    series: Sequence[tuple[str, str]],
    axis: str,
    desc: str,
    index_name: str,
    legend: bool = True,
) -> str:
    """Horizontal bars, one per row of ``counts``, stacked by its columns."""
    width, label_w, right = _HALF_W, 150, 36
    plot_x, plot_w = label_w + 8, width - label_w - 8 - right
    legend_marks, legend_h = _legend(series, 8, 8, width - 16) if legend else ("", 0)
    top = 8 + legend_h + (6 if legend else 4)
    row_h, bar_h = 24, 16
    plot_h = row_h * len(counts)
    height = top + plot_h + 48
    totals = counts.sum(axis=1)
    x_max, step = _nice_scale(float(totals.max()))

    def x_of(value: float) -> float:
        return plot_x + value / x_max * plot_w

    marks = [legend_marks]
    for tick in range(0, x_max + 1, step):
        x = x_of(tick)
        marks.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}"/>'
            f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tick:,}</text>'
        )
    bars = []
    for i, (label, row) in enumerate(counts.iterrows()):
        y = top + i * row_h + (row_h - bar_h) / 2
        full = _clean(label)
        marks.append(
            f'<text class="label" x="{label_w}" y="{y + bar_h - 4:.1f}" text-anchor="end">'
            f"<title>{_e(full)}</title>{_e(_short(full, 20))}</text>"
        )
        base = 0
        for name, colour in series:
            value = int(row[name])
            if not value:
                continue
            x0, x1 = x_of(base), x_of(base + value)
            bars.append(
                f'<rect x="{x0:.2f}" y="{y:.1f}" width="{x1 - x0:.2f}" height="{bar_h}" '
                f'fill="{colour}"><title>{_e(full)} \u00b7 {_e(name)}: {value:,}</title></rect>'
            )
            base += value
        marks.append(
            f'<text class="value" x="{x_of(base) + 6:.1f}" y="{y + bar_h - 4:.1f}">{base:,}</text>'
        )
    marks.append(f'<g class="bars">{"".join(bars)}</g>')
    marks.append(
        f'<line class="axis" x1="{plot_x}" x2="{plot_x}" y1="{top}" y2="{top + plot_h}"/>'
        f'<text class="axis-title" x="{plot_x + plot_w / 2:.0f}" y="{height - 8}" '
        f'text-anchor="middle">{_e(axis)}</text>'
    )
    svg = _svg(
        key, title, f"{desc}; the numbers are in the table below.", width, height, "".join(marks)
    )
    return svg + _data_table(counts, index_name, _clean)


def _data_table(counts: pd.DataFrame, index_name: str, label: Any) -> str:
    """The chart's numbers, folded away: for screen readers, copying and exact values."""
    columns = list(counts.columns)
    head = "".join(f'<th scope="col" class="n">{_e(c)}</th>' for c in columns)
    rows = []
    for index, row in counts.iterrows():
        cells = "".join(f'<td class="n">{int(row[c]):,}</td>' for c in columns)
        total = int(row.sum())
        rows.append(
            f'<tr><th scope="row">{_e(label(index))}</th>{cells}<td class="n">{total:,}</td></tr>'
        )
    return (
        '<details class="numbers"><summary>numbers</summary><div class="scroll"><table>'
        f'<thead><tr><th scope="col">{_e(index_name)}</th>{head}<th scope="col" class="n">total</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>"
    )


# -- exception lists ----------------------------------------------------------------------------


def _list_table(header: Sequence[str], rows: Iterable[Sequence[str]], classes: str = "") -> str:
    """A table of already-escaped cells."""
    head = "".join(f'<th scope="col">{h}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="list {classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _exceptions(
    digest: OutcomeDigest, rejects: pd.DataFrame | None, reject_total: int | None
) -> str:
    parts = ['<section id="exceptions"><h2>Exceptions</h2>']
    total = (0 if rejects is None else len(rejects)) if reject_total is None else reject_total
    parts.append(
        _exception_block("rejects", "Rejects", total, lambda: _reject_table(rejects, total))
    )

    def invalid() -> str:
        return _list_table(
            ("chat", "started (UTC)", "reason"),
            (
                (f"<code>{_e(r.chat_id)}</code>", _when(r.chat_started_at), _e(r.reason))
                for r in digest.invalid.head(LIST_LIMIT).itertuples()
            ),
        ) + _more(digest.invalid_count)

    parts.append(
        _exception_block("invalid-emails", "Invalid emails", digest.invalid_count, invalid)
    )

    def multi_match() -> str:
        emails, email_count = digest.multi_match()
        return (
            '<p class="muted">Emails that more than one lead or contact share: each chat was '
            "written to all of them.</p>"
            + _list_table(
                ("email", "records", "chats"),
                (
                    (_e(r.email), f"<code>{_e(r.records)}</code>", _num(r.chats))
                    for r in emails.itertuples()
                ),
            )
            + _more(email_count)
        )

    parts.append(
        _exception_block(
            "multi-match-emails", "Multi-match emails", digest.multi_match_count(), multi_match
        )
    )

    def skipped() -> str:
        by_reason = digest.reasons()
        reasons = "".join(
            f'<li>{_e(reason) or "(no reason)"} <span class="muted">({count:,})</span></li>'
            for reason, count in by_reason[:TOP_N]
        )
        reasons = f'<ul class="reasons">{reasons}</ul>' if len(by_reason) > 1 else ""
        return (
            reasons
            + _list_table(
                ("chat", "email", "reason"),
                (
                    (f"<code>{_e(r.chat_id)}</code>", _e(r.email_normalized), _e(r.reason))
                    for r in digest.skipped.head(LIST_LIMIT).itertuples()
                ),
            )
            + _more(digest.skipped_count)
        )

    parts.append(_exception_block("skipped-leads", "Skipped leads", digest.skipped_count, skipped))

    def removed() -> str:
        removed_reasons = "".join(
            f'<li>{_e(reason) or "(no reason)"} <span class="muted">({count:,})</span></li>'
            for reason, count in sorted(digest.removed_reasons.items(), key=lambda i: (-i[1], i[0]))
        )
        return (
            '<p class="muted">Chats whose content was removed from the store with everything '
            "derived from them (a lead they created stays).</p>"
            + f'<ul class="reasons">{removed_reasons}</ul>'
            + _list_table(
                ("chat", "started (UTC)", "reason"),
                (
                    (f"<code>{_e(r.chat_id)}</code>", _when(r.chat_started_at), _e(r.reason))
                    for r in digest.removed.head(LIST_LIMIT).itertuples()
                ),
            )
            + _more(digest.removed_count)
        )

    parts.append(_exception_block("removed-chats", "Removed chats", digest.removed_count, removed))
    parts.append("</section>\n")
    return "".join(parts)


def _exception_block(anchor: str, title: str, count: int, body: Callable[[], str]) -> str:
    """A list's card: its count, and ``body()`` (drawn only when the list has rows)."""
    content = body() if count else _none()
    return (
        f'<div class="card wide exception" id="{anchor}"><h3>{title} '
        f'<span class="count">{_num(count)}</span></h3>{content}</div>'
    )


def _no_rows(frame: pd.DataFrame | None) -> bool:
    """A table with nothing to draw: none built (``OutcomeDigest``'s, for no rows) or empty."""
    return frame is None or frame.empty


def _when(value: Any) -> str:
    if _missing(value):
        return "\u2013"
    import pandas as pd  # noqa: PLC0415

    return _e(pd.Timestamp(value).strftime("%Y-%m-%d %H:%M"))


def _raw(value: Any) -> str:
    text = _clean(value)
    extra = len(text) - RAW_LIMIT
    shown = text[:RAW_LIMIT] if extra > 0 else text
    more = f'<span class="more">\u2026 {extra:,} more characters</span>' if extra > 0 else ""
    return f"<pre>{_e(shown)}</pre>{more}"


def _reject_table(rejects: pd.DataFrame, total: int | None = None) -> str:
    rejects = rejects.reindex(columns=["source_file", "position", "kind", "reason", "raw"])
    rows = (
        (
            f'<span class="file" title="{_e(r.source_file)}">{_e(_file_name(r.source_file))}</span>',
            _e(r.position),
            _e(r.kind),
            _e(r.reason),
            _raw(r.raw),
        )
        for r in rejects.head(LIST_LIMIT).itertuples()
    )
    return _list_table(("file", "position", "kind", "reason", "raw"), rows, "rejects") + _more(
        len(rejects) if total is None else total
    )


def _file_name(path: Any) -> str:
    text = _clean(path)
    return re.split(r"[\\/]", text)[-1] or text


_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff;
--good:#1a7f37;--bad:#cf222e;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans",
"Liberation Sans",Arial,sans-serif}
.wrap{max-width:1040px;margin:0 auto;padding:0 20px}
header.top{background:#24292f;color:#fff;margin-bottom:20px}
header.top .wrap{display:flex;align-items:center;gap:24px;height:44px}
.brand{font-weight:600;letter-spacing:.02em}
nav a{color:#d1d9e0;text-decoration:none;margin-right:16px}
nav a:hover{color:#fff;text-decoration:underline}
h1{font-size:24px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 10px}
.card h2,.card h3{font-size:14px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.04em;
color:var(--muted)}
h3{font-size:15px;margin:18px 0 8px}
.muted{color:var(--muted);font-weight:400}
.lede{margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;
border:1px solid var(--line);background:#eaeef2;color:var(--fg)}
.badge.good{background:#dafbe1;border-color:#4ac26b;color:var(--good)}
.badge.bad{background:#ffebe9;border-color:#ff8182;color:var(--bad)}
.badge.warn{background:#fff8c5;border-color:#d4a72c;color:var(--warn)}
.error{color:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:12px 14px;
min-width:0}
.card.wide{margin-top:12px}
.card.accounting .big{font-size:26px;font-weight:600;margin-top:4px}
.card.accounting p{margin:4px 0}.card.accounting table{margin-top:10px}
.warn-card{border-color:#d4a72c}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px 3px 0;vertical-align:top;overflow-wrap:anywhere}
table.kv th{font-weight:400;color:var(--muted);white-space:nowrap}table.kv td{text-align:right;
font-variant-numeric:tabular-nums}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.outcomes th,table.outcomes td,table.compare th,table.compare td{border-bottom:1px solid #eef1f4}
table.outcomes tfoot th,table.outcomes tfoot td{border-bottom:0;font-weight:600}
.barcell{width:45%}.bar{display:block;height:12px;border-radius:2px;min-width:1px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:8px;
vertical-align:-1px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}
figure.chart-box{margin:0;background:var(--card);border:1px solid var(--line);border-radius:6px;
padding:12px 14px;min-width:0}
figure.chart-box.wide{grid-column:1/-1}
figcaption{font-weight:600;margin-bottom:6px}
svg.chart{display:block;width:100%;height:auto;max-width:100%}
svg.chart text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
"Liberation Sans",Arial,sans-serif;font-size:12px;fill:var(--fg)}
svg.chart .tick,svg.chart .value{fill:var(--muted);font-size:11px}
svg.chart .axis-title{fill:var(--muted)}
svg.chart .grid{stroke:#eef1f4}svg.chart .axis{stroke:#8c959f}
svg.chart .frame{fill:#fafbfc;stroke:var(--line);stroke-dasharray:4 4}
svg.chart text.empty{fill:var(--muted);font-size:16px}
.note{color:var(--muted);font-size:12px;margin:4px 0 0}
details.numbers{margin-top:6px;font-size:12px}details.numbers summary{cursor:pointer;
color:var(--muted)}
.scroll{overflow-x:auto}
table.list{font-size:13px}
table.list th{border-bottom:1px solid var(--line);color:var(--muted);font-weight:600;
white-space:nowrap}
td.nowrap{white-space:nowrap}
table.list td{border-bottom:1px solid #eef1f4}
table.rejects td:last-child{width:45%}
table.rejects td:first-child{min-width:9em}table.rejects td:nth-child(4){min-width:12em}
.compare-cards{grid-template-columns:repeat(auto-fill,minmax(300px,1fr))}
table.compare th[scope=row]{overflow-wrap:normal}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font:12px/1.35 ui-monospace,
SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;background:#f6f8fa;padding:4px 6px;
border-radius:4px;max-height:12em;overflow:auto}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
.count{display:inline-block;min-width:22px;padding:0 7px;border-radius:999px;background:#eaeef2;
color:var(--fg);font-size:12px;text-align:center;text-transform:none}
.more{color:var(--muted);font-size:12px;font-style:italic}
ul.reasons{margin:0 0 8px;padding-left:18px}
footer{color:var(--muted);font-size:12px;padding-top:24px;padding-bottom:32px}
@media (max-width:760px){.charts{grid-template-columns:1fr}}
@media print{header.top{display:none}body{background:#fff}.card,figure.chart-box{break-inside:avoid}}
"""
