"""The ``chatsell`` command line: parse options, call the pipeline, render. Nothing else.

The face starts light: ``import etl.cli``, ``chatsell --help``, ``--version`` and every
``chatsell <command> --help`` import neither pandas, numpy nor SQLAlchemy. The modules that
do (the pipeline, the store, the read side, the renderers) are imported by the commands that
use them, each in one helper below (tests/unit/test_light_face.py keeps it so).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from etl import __version__
from etl.errors import ChatsellError, ConfigError
from etl.logs import configure

if TYPE_CHECKING:
    from types import ModuleType

    from etl.config import Settings
    from etl.load.store import Store

log = logging.getLogger("chatsell")


# The heavy modules, each imported in one place, when a command first needs it.


def _pipeline() -> ModuleType:
    """The sync engine: SyncOptions, run_sync."""
    import etl.run

    return etl.run


def _store_module() -> ModuleType:
    """The store (SQLAlchemy): Store, masked."""
    import etl.load.store

    return etl.load.store


def _readside() -> ModuleType:
    """Reading stored runs and records: load_run_report, write_details, read_feed, export_widgets."""
    import etl.readside

    return etl.readside


def _render() -> ModuleType:
    """The run report as text, JSON or CSV: render_text, render_json, render_csv_summary."""
    import etl.report.render

    return etl.report.render


def _render_compare() -> ModuleType:
    """What changed between two runs, as text: render_compare_text."""
    import etl.report.compare

    return etl.report.compare


def _render_html() -> ModuleType:
    """The run report as one HTML page: render_html."""
    import etl.report.html

    return etl.report.html


@dataclass
class AppContext:
    """What every command gets: settings (config file + environment + --db) and a store."""

    config_file: str | None
    db: str | None
    _settings: Settings | None = None
    _stores: list[Store] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from etl.config import load_settings  # pydantic-settings: ~0.15 s, only when used

            self._settings = load_settings(self.config_file, database_url=self.db)
        return self._settings

    def store(self) -> Store:
        url = self.settings.database_url.get_secret_value()
        store = _store_module().Store(url)
        self._stores.append(store)
        return store

    def close(self) -> None:
        for store in self._stores:
            store.dispose()


def _run(fn, *args, **kwargs):
    """Call into the library; a ChatsellError becomes its exit code and a one-line message.

    Anything else is a bug or an outage: one line on stderr, exit 1, the traceback only with -v.
    """
    try:
        return fn(*args, **kwargs)
    except ChatsellError as exc:
        click.echo(f"chatsell: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a command
        log.debug("unexpected error", exc_info=True)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        click.echo(
            f"chatsell: the run failed: {type(exc).__name__}: {first_line} (-v shows the traceback)",
            err=True,
        )
        sys.exit(1)


def _to_stdout(fn, *args, **kwargs):
    """Call ``fn``, which writes to stdout: when the reader stops reading (``| head``), stop
    quietly with exit 1, as a Unix tool does, not with a failure message."""
    try:
        return fn(*args, **kwargs)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would fail again
        sys.exit(1)


@click.group(
    context_settings={"auto_envvar_prefix": "CHATSELL", "help_option_names": ["-h", "--help"]}
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="CHATSELL_CONFIG",
    help="TOML configuration file (see config/chatsell.example.toml).",
)
@click.option(
    "--db",
    envvar="CHATSELL_DATABASE_URL",
    show_envvar=True,
    show_default=False,
    help="Store URL: sqlite:///chatsell.db (default) or postgresql+psycopg://user:pass@host/db.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object per line (for cron and log shippers).",
)
@click.option("-v", "--verbose", count=True, help="More log detail (-vv for SQL-level detail).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(__version__, prog_name="chatsell")
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: str | None,
    db: str | None,
    log_format: str,
    verbose: int,
    quiet: bool,
) -> None:
    """Keep a CRM store in step with Zendesk Chat: match chats to Sell records, load activities."""
    configure(log_format, -1 if quiet else verbose)
    ctx.obj = AppContext(config_file, db)
    ctx.call_on_close(ctx.obj.close)


def _paths_option(name: str, help_text: str):
    return click.option(
        name, required=True, type=click.Path(exists=False, path_type=Path), help=help_text
    )


def _create_notify_options(fn):
    fn = click.option("--notify/--no-notify", default=True, show_default=True,
                      help="Write notifications for chats tagged for sales.")(fn)  # fmt: skip
    return click.option("--create-leads/--no-create-leads", default=True, show_default=True,
                        help="Create leads for unmatched chats (matching goes on either way).")(fn)  # fmt: skip


@cli.command()
@_paths_option("--chats", "Zendesk Chat export: a file or a directory (searched recursively).")
@_paths_option("--sell", "Zendesk Sell export: a file or a directory.")
@click.option(
    "--full", is_flag=True, help="Re-read every export file, not only new or changed ones."
)
@click.option("--dry-run", is_flag=True, help="Compute and report everything; write nothing.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the run's report files (JSON) into this directory.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run report as JSON, last on stdout."
)
@click.option(
    "--fail-on-rejects", is_flag=True, help="Exit 3 when the run set records aside as rejects."
)
@click.option(
    "--push", "then_push", is_flag=True, help="Then push the outbox to Sell (as `chatsell push`)."
)
@_create_notify_options
@click.pass_obj
def sync(
    app: AppContext,
    chats: Path,
    sell: Path,
    full: bool,
    dry_run: bool,
    report_dir: Path | None,
    as_json: bool,
    fail_on_rejects: bool,
    then_push: bool,
    create_leads: bool,
    notify: bool,
) -> None:
    """Sync chats and the Sell snapshot into the store, then report."""
    pipeline = _pipeline()
    options = pipeline.SyncOptions(chats=chats, sell=sell, full=full, dry_run=dry_run, report_dir=report_dir,
                                   create_leads=create_leads, notify=notify, collect_leads=False)  # fmt: skip
    settings = _run(lambda: app.settings)
    result = _run(pipeline.run_sync, settings, options, store=_run(app.store), progress=_progress())
    render = _render()
    click.echo(render.render_json(result.report) if as_json else render.render_text(result.report))
    failed_rows = 0
    if then_push:  # once the sync has committed: a push of its own (a dry run sends nothing)
        pushed = _push_now(app, settings, dry_run=dry_run, as_json=as_json)
        failed_rows = pushed.failed
    if (fail_on_rejects and result.report["rejects"]) or failed_rows:
        sys.exit(3)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Send nothing; with --json list the requests.")
@click.option("--json", "as_json", is_flag=True, help="Print the push report as JSON, last.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N rows, oldest first.")
@click.option("--retry-failed", is_flag=True, help="Send the rows that failed before again.")
@click.option("--base-url", help="Sell's API (default [sell] base_url).")
@click.pass_obj
def push(
    app: AppContext,
    dry_run: bool,
    as_json: bool,
    limit: int | None,
    retry_failed: bool,
    base_url: str | None,
) -> None:
    """Deliver the outbox to Zendesk Sell, exactly once (token: CHATSELL_SELL_TOKEN).

    Exit 0 when no row failed, 3 when some did (the rest were sent), 75 when locked.
    """
    settings = _run(lambda: app.settings)
    pushed = _push_now(app, settings, dry_run=dry_run, as_json=as_json, limit=limit,
                       retry_failed=retry_failed, base_url=base_url)  # fmt: skip
    if pushed.failed:
        sys.exit(3)


def _push_now(app: AppContext, settings, *, dry_run: bool, as_json: bool, **options):
    from etl.push.runner import PushOptions, run_push  # noqa: PLC0415

    def emit(request: dict) -> None:  # a dry run's requests, one JSON object a line
        if as_json:
            click.echo(json.dumps(request, default=str))

    given = PushOptions(dry_run=dry_run, **options)
    pushed = _run(run_push, settings, given, store=_run(app.store), emit=emit)
    if as_json:
        click.echo(json.dumps(pushed.report, indent=2))
    else:
        click.echo(_render().render_push(pushed.report))
    return pushed


_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class WindowType(click.ParamType):
    """A window length such as 1d, 12h, 30m or 2w."""

    name = "window"

    def convert(self, value, param, ctx):
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        if len(text) >= 2 and text[:-1].isdigit() and text[-1] in _UNITS and int(text[:-1]) > 0:
            return timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
        self.fail(f"{value!r} is not a window like 1d, 12h, 30m or 2w", param, ctx)


class DateType(click.ParamType):
    """A date (2026-11-01) or an ISO-8601 date-time; UTC unless it carries an offset."""

    name = "date"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or ISO-8601 date-time", param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@cli.command()
@_paths_option("--chats", "Zendesk Chat export: a file or a directory (searched recursively).")
@_paths_option("--sell", "Zendesk Sell export: a file or a directory.")
@click.option(
    "--since", required=True, type=DateType(), help="First chat start time to take (inclusive)."
)
@click.option(
    "--until", required=True, type=DateType(), help="Chat start time to stop at (exclusive)."
)
@click.option(
    "--window",
    type=WindowType(),
    default="1d",
    show_default=True,
    help="Window length; each window commits on its own.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the last unfinished backfill of these inputs after its last finished window.",
)
@click.option("--dry-run", is_flag=True, help="Compute and report everything; write nothing.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run report as JSON, last on stdout."
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the run's report files into this directory.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where the work runs: this process, or Dask distributed workers (PostgreSQL store).",
)
@click.option("--scheduler", "dask_scheduler", help="Dask scheduler address (with --engine dask).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes of a local Dask cluster (default 2).",
)
@_create_notify_options
@click.pass_obj
def backfill(
    app: AppContext,
    chats: Path,
    sell: Path,
    since: datetime,
    until: datetime,
    window: timedelta,
    resume: bool,
    dry_run: bool,
    as_json: bool,
    report_dir: Path | None,
    engine: str,
    dask_scheduler: str | None,
    workers: int | None,
    create_leads: bool,
    notify: bool,
) -> None:
    """Load the chats started in [--since, --until), window by window."""
    if engine == "local" and (dask_scheduler or workers):
        raise click.UsageError("--scheduler and --workers go with --engine dask")
    if dask_scheduler and workers:
        raise click.UsageError("--workers sizes a local cluster: give it or --scheduler, not both")
    if since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    pipeline = _pipeline()
    options = pipeline.SyncOptions(chats=chats, sell=sell, dry_run=dry_run, mode="backfill", report_dir=report_dir,
                                   create_leads=create_leads, notify=notify, since=since, until=until, window=window,
                                   resume=resume, engine=engine, dask_scheduler=dask_scheduler,
                                   dask_workers=workers, collect_leads=False)  # fmt: skip
    settings = _run(lambda: app.settings)
    result = _run(pipeline.run_sync, settings, options, store=_run(app.store), progress=_progress())
    render = _render()
    click.echo(render.render_json(result.report) if as_json else render.render_text(result.report))


def _progress():
    """A progress bar on a terminal; nothing (the log lines suffice) under cron."""
    if not sys.stderr.isatty():
        return lambda *_: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if not bar.live.is_started:
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)
        if total is not None and done >= total:
            bar.stop()

    return update


@cli.command()
@click.argument("run_id", default="latest")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv", "html"]),
    default="text",
    show_default=True,
    help="Output format (html: one self-contained page with charts).",
)
@click.option(
    "--details", is_flag=True, help="One row per chat (chat_id, outcome, email, records, reason)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option("--compare", "compare_to", help="Show what changed since this run (a run id).")
@click.pass_obj
def report(
    app: AppContext, run_id: str, fmt: str, details: bool, out: Path | None, compare_to: str | None
) -> None:
    """Show a run's reconciliation report (RUN_ID or 'latest')."""
    for value, hint in ((run_id, "RUN_ID"), (compare_to, "--compare")):
        if value is not None and value != "latest" and not value.isdigit():
            raise click.BadParameter("a run number or 'latest'", param_hint=hint)
    settings = _run(lambda: app.settings)
    readside = _readside()
    if details:  # every chat's row, written as it is read: JSON, else CSV
        kind = "json" if fmt == "json" else "csv"
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", encoding="utf-8", newline="") as stream:
                _run(readside.write_details, settings, run_id, kind, stream, store=_run(app.store))
        else:
            _run(_to_stdout, readside.write_details, settings, run_id, kind,
                 click.get_text_stream("stdout"), store=_run(app.store))  # fmt: skip
        return
    outcomes = "digest" if fmt == "html" else None
    stored = _run(
        readside.load_run_report, settings, run_id, compare_to=compare_to, store=_run(app.store),
        outcomes=outcomes,
    )  # fmt: skip
    report_data, comparison = stored.report, stored.comparison
    render = _render()
    if fmt == "json":
        text = render.render_json(
            {**report_data, "comparison": comparison} if comparison else report_data
        )
    elif fmt == "csv":
        text = render.render_csv_summary(report_data)
    elif fmt == "html":
        text = _render_html().render_html(
            report_data, stored.outcomes, stored.rejects, comparison, stored.reject_total
        )
    else:
        text = (
            render.render_text(report_data)
            if "outcomes" in report_data or "push" in report_data
            else json.dumps(report_data, indent=2)
        )
        if comparison:
            text += "\n\n" + _render_compare().render_compare_text(comparison)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    else:
        click.echo(text.rstrip("\n"))


@cli.command()
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many runs to list.",
)
@click.pass_obj
def runs(app: AppContext, limit: int) -> None:
    """List recent runs, newest first."""
    store = _run(app.store)
    _run(store.prepare)
    rows = store.recent_runs(limit)
    header = f"{'run':>5}  {'mode':<9} {'status':<10} {'started':<20} {'secs':>7} {'chats':>9} {'leads':>7} {'rejects':>8}"
    click.echo(header)
    for row in rows:
        report_data = json.loads(row["report"]) if row.get("report") else {}
        started = row["started_at"]
        finished = row["finished_at"]
        seconds = (finished - started).total_seconds() if finished and started else None
        click.echo(
            f"{row['run_id']:>5}  {row['mode']:<9} {row['status']:<10} {started:%Y-%m-%d %H:%M:%S} "
            f"{(f'{seconds:.1f}' if seconds is not None else '-'):>7} "
            f"{report_data.get('inputs', {}).get('chats_read', '-'):>9} "
            f"{report_data.get('writes', {}).get('leads_created', '-'):>7} "
            f"{report_data.get('rejects', '-'):>8}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: each condition's figure.")
@click.pass_obj
def health(app: AppContext, as_json: bool) -> None:
    """Evaluate the alert conditions against the store, running nothing ([alerts]).

    Exit 0 when none fires, 1 when one does: for a monitoring probe or a cron `&&`.
    """
    from etl.monitor import check  # noqa: PLC0415

    store = _run(app.store)
    _run(store.prepare)
    conditions = _run(check, app.settings, store)
    firing = [c.name for c in conditions if c.firing]
    if as_json:
        click.echo(
            json.dumps(
                {"healthy": not firing, "firing": firing,
                 "conditions": [c.as_dict() for c in conditions]},
                indent=2,
            )
        )  # fmt: skip
    else:
        for condition in conditions:
            click.echo(condition.line())
        click.echo("healthy" if not firing else f"unhealthy: {', '.join(firing)}")
    sys.exit(1 if firing else 0)


@cli.command()
@click.argument("emails", nargs=-1, required=True, metavar="EMAIL...")
@click.option("--dry-run", is_flag=True, help="Count what would be erased; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was erased as JSON.")
@click.pass_obj
def forget(app: AppContext, emails: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Erase every stored trace of these people's chats (an erasure request).

    Their chats, activities, notes, notifications and phone changes go, their email leaves the
    run outcomes and the rejects, the leads chatsell made for them and never pushed go; the
    ones in Sell are listed, to erase there. The email is remembered only as a salted hash, so
    a sync of an old export brings none of it back. Exit 75 when a run holds the store.
    """
    from etl.run.privacy import forget as erase  # noqa: PLC0415

    settings = _run(lambda: app.settings)
    erased = _run(erase, settings, _run(app.store), list(emails), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(erased.as_dict(), indent=2, default=str))
        return
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb} {len(erased.emails)} email(s):")
    for table, count in sorted(erased.tables.items()):
        click.echo(f"  {table:<16} {count:>8}  {_ERASED_HOW.get(table, 'rows deleted')}")
    for lead in erased.pushed_leads:
        sell_id = lead["sell_id"] or "not known yet: a push is in flight"
        click.echo(
            f"kept lead {lead['id']} (sell_id {sell_id}, {lead['email']}): it is in Sell; "
            "erase it there"
        )


@cli.command()
@click.option("--dry-run", is_flag=True, help="Count what would be blanked or deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print what was pruned as JSON.")
@click.pass_obj
def prune(app: AppContext, dry_run: bool, as_json: bool) -> None:
    """Apply [retention] now: blank old transcripts and note texts, delete old run details.

    Each sync applies it after it commits; this is for a store no sync runs on, or a policy
    just shortened. Exit 75 when a run holds the store.
    """
    from etl.run.privacy import prune as apply_retention  # noqa: PLC0415

    settings = _run(lambda: app.settings)
    retention = settings.retention
    if retention.transcripts_days is None and retention.run_details_days is None:
        click.echo(
            "nothing to prune: [retention] sets neither transcripts_days nor run_details_days"
        )
        return
    pruned = _run(apply_retention, settings, _run(app.store), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(pruned.as_dict(), indent=2))
        return
    click.echo("would prune:" if dry_run else "pruned:")
    for name, count in sorted(pruned.tables.items()):
        click.echo(f"  {name:<16} {count:>8}  {_PRUNED_HOW.get(name, '')}".rstrip())


# what a count of `forget` and `prune` means, per table (the rest: rows deleted)
_ERASED_HOW = {
    "run_outcomes": "rows or reasons blanked",
    "rejects": "raw texts blanked",
    "sell_outbox": "unsent rows deleted, sent ones blanked",
    "erasures": "hashes remembered",
    "scratch_dirs": "killed runs' scratch removed",
}  # fmt: skip
_PRUNED_HOW = {
    "chats": "transcripts and agent notes blanked", "activities": "transcripts blanked",
    "notes": "texts blanked", "run_outcomes": "rows deleted", "rejects": "rows deleted",
}  # fmt: skip


@cli.command()
@click.argument("record")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["chat", "note", "all"]),
    default="all",
    show_default=True,
    help="Chats, notes or both.",
)
@click.option("--user", help="Only items of this agent's Sell user (id, email or name).")
@click.option("--team", help="Only items of agents in this Sell team.")
@click.option("--group", help="Only items of agents in this Sell group.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most N items.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON.")
@click.pass_obj
def feed(
    app: AppContext,
    record: str,
    kind: str,
    user: str | None,
    team: str | None,
    group: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show a record's chat activities and notes, newest first.

    RECORD is lead:ID, contact:ID, deal:ID or an email address (all records with that email).
    """
    settings = _run(lambda: app.settings)
    result = _run(_readside().read_feed, settings, record, kind=kind, user=user, team=team, group=group,
                  limit=limit, store=_run(app.store))  # fmt: skip
    if result.total > len(result.items):
        click.echo(
            f"warning: showing the {len(result.items)} newest of {result.total} items for {record} "
            f"(capped by --limit {limit})",
            err=True,
        )
    if as_json:
        click.echo(
            result.items.to_json(orient="records", date_format="iso", force_ascii=False, indent=2)
        )
        return
    if result.items.empty:
        click.echo(f"no chats or notes for {record}")
        return
    for item in result.items.to_dict("records"):
        click.echo(_feed_line(item))


def _feed_line(item: dict) -> str:
    import pandas as pd  # loaded already: read_feed's items are a DataFrame

    when = (
        item["at"].strftime("%Y-%m-%d %H:%M")
        if item["at"] is not None and not pd.isna(item["at"])
        else "?"
    )
    target = f"{item['record_type']}:{item['record_id']}"
    agent = item.get("user_name") or ""
    if item["type"] == "note":
        body = str(item.get("content") or "").replace("\n", " / ")
        return f"{when}        note  {target}  by {agent or 'integration user'}: {body}"
    ended = item.get("ended_at")
    until = ended.strftime("%H:%M") if ended is not None and not pd.isna(ended) else "     "
    agents = ", ".join(json.loads(item["agent_names"] or "[]")) or "no agent"
    lines = [
        f"{when}-{until}  chat  {target} {item.get('record_name') or ''}  visitor: {item.get('visitor_name') or '-'}"
        f"  agents: {agents}  ({int(item.get('message_count') or 0)} messages)"
    ]
    if item.get("transcript_url"):
        lines.append(f"    {item['transcript_url']}")
    return "\n".join(lines)


@cli.command()
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv"]),
    default="ndjson",
    show_default=True,
    help="One JSON object per card, or one CSV row per card.",
)
@click.pass_obj
def widgets(app: AppContext, out: Path, fmt: str) -> None:
    """Export Sell card data for Chat, per visitor email ([widgets.*] layout is an allow-list)."""
    settings = _run(lambda: app.settings)
    count = _run(_readside().export_widgets, settings, out, fmt, store=_run(app.store))
    click.echo(f"{count} cards written to {out}")


@cli.command()
@click.option("--once", is_flag=True, help="Run each configured job once, now, and exit.")
@click.pass_obj
def schedule(app: AppContext, once: bool) -> None:
    """Run the jobs of [schedule] in the config (cron expressions, APScheduler)."""
    from jobs.scheduler import configured_jobs, run_forever, run_once

    settings = _run(lambda: app.settings)
    if not configured_jobs(settings, threading.Event()):
        raise click.UsageError(
            "no jobs configured: add [schedule.pull], [schedule.sync] and/or [schedule.report] to the config"
        )
    if once:
        sys.exit(0 if _run(run_once, settings) else 1)
    _run(run_forever, settings)


@cli.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write chat/ and sell/ into.",
)
@click.option(
    "--chats",
    "chat_count",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many chats.",
)
@click.option(
    "--records",
    "record_count",
    default=5_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many Sell leads, contacts and deals.",
)
@click.option(
    "--seed", default=1, show_default=True, type=int, help="The same seed gives the same files."
)
@click.option(
    "--overwrite", is_flag=True, help="Replace exports a previous generate wrote to --out."
)
def generate(out: Path, chat_count: int, record_count: int, seed: int, overwrite: bool) -> None:
    """Write realistic synthetic Chat and Sell exports (for demos and benchmarks)."""
    from etl.generate import generate as write_exports

    try:
        write_exports(out, chat_count, record_count, seed, overwrite=overwrite)
    except (ValueError, FileExistsError, OSError) as exc:
        raise click.UsageError(str(exc).replace("overwrite=True", "--overwrite")) from None
    click.echo(f"{chat_count:,} chats and {record_count:,} Sell records written to {out}")


@cli.command()
@click.argument("source", type=click.Choice(["chat", "sell"]))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory the pages are written into (sync reads it).",
)
@click.option("--base-url", help="API host (default: [chat] subdomain / [sell] base_url).")
@click.option(
    "--since",
    type=DateType(),
    help="Where a first chat pull starts (a later pull continues from its cursor).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was fetched as JSON.")
@click.pass_obj
def pull(
    app: AppContext,
    source: str,
    out: Path,
    base_url: str | None,
    since: datetime | None,
    as_json: bool,
) -> None:
    """Fetch exports from the live Zendesk APIs (tokens: CHATSELL_CHAT_TOKEN, CHATSELL_SELL_TOKEN)."""
    from etl.pull import pull_chat, pull_sell

    settings = _run(lambda: app.settings)
    fetch = pull_chat if source == "chat" else pull_sell
    result = _run(fetch, settings, _run(app.store), out, base_url=base_url, since=since)
    click.echo(json.dumps(result.as_dict(), default=str) if as_json else result.summary())


@cli.group()
def db() -> None:
    """Manage the store's schema (Alembic migrations)."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(app: AppContext) -> None:
    """Bring the store's schema to the newest migration."""
    store = _run(app.store)
    _run(store.check_reachable)
    _run(store.upgrade)
    click.echo(f"{_store_module().masked(store.url)} at schema {store.current()}")


@db.command("current")
@click.pass_obj
def db_current(app: AppContext) -> None:
    """Show the store's schema revision and the newest one chatsell knows."""
    store = _run(app.store)
    _run(store.check_reachable)
    current = store.current()
    head = store.head()
    state = "up to date" if current == head else "needs `chatsell db upgrade`"
    click.echo(
        f"{_store_module().masked(store.url)}: {current or 'empty'} (newest {head}, {state})"
    )


def main() -> None:
    try:
        cli.main(prog_name="chatsell", standalone_mode=True)
    except ConfigError as exc:  # raised while building settings outside _run
        click.echo(f"chatsell: {exc}", err=True)
        sys.exit(exc.exit_code)
