"""The report page a run leaves, on both stores: drawn from its outcomes read in bounded fetches
(a million-chat run must not hold its million outcome rows to draw a page), and the same page as
from the rows taken whole."""

from __future__ import annotations

import json

import pytest

from etl.load.store import Store
from etl.readside import load_run_report, publish_report
from etl.report.digest import OutcomeDigest
from etl.report.html import LIST_LIMIT, render_html

from integration.scenario import settings_for, sync


def _whole_page(store: Store, run_id: int) -> str:
    report = json.loads(store.run_row(run_id)["report"])
    return render_html(report, store.outcome_rows(run_id), store.reject_rows(run_id))


def test_a_runs_page_is_drawn_from_bounded_reads(store_url, tmp_path, generated, monkeypatch):
    chats, sell, manifest = generated
    settings = settings_for(store_url)
    digests, fetched = [], []

    def bounded(self, run_id, size=None):
        return real(self, run_id, size=3)  # many fetches for the 400 chats

    def folded(cls, counts, listed):
        digest = real_from(counts, listed)
        digests.append(digest)
        return digest

    def listed(self, frame):
        fetched.append(len(frame))
        return real_listed(self, frame)

    def whole(*_args, **_kwargs):
        raise AssertionError("a run's page must not read every outcome row at once")

    real, real_listed = Store.outcome_digest_rows, OutcomeDigest.add_listed
    real_from = OutcomeDigest.from_store
    monkeypatch.setattr(Store, "outcome_digest_rows", bounded)
    monkeypatch.setattr(OutcomeDigest, "from_store", classmethod(folded))
    monkeypatch.setattr(OutcomeDigest, "add_listed", listed)
    monkeypatch.setattr(Store, "outcome_rows", whole)
    result = sync(store_url, chats, sell, settings=settings, report_dir=tmp_path / "rep")
    published = publish_report(settings, result.run_id, tmp_path / "pub")
    monkeypatch.undo()

    assert len(digests) == 2 and digests[0].rows == result.report["accounting"]["chats_read"]
    # the exception lists' rows came 3 at a time, in many fetches for each page
    assert max(fetched) <= 3 and len(fetched) > 2 * 2
    store = Store(store_url)
    try:
        expected = _whole_page(store, result.run_id)
    finally:
        store.dispose()
    summary = load_run_report(settings, result.run_id, outcomes=None)
    assert summary.outcomes is None and summary.rejects.empty  # a summary reads neither
    with pytest.raises(ValueError, match="outcomes"):
        load_run_report(settings, result.run_id, outcomes="all")
    name = f"run-{result.run_id}.html"
    assert (tmp_path / "rep" / name).read_text(encoding="utf-8") == expected
    assert (tmp_path / "pub" / name).read_text(encoding="utf-8") == expected
    assert tmp_path / "pub" / name in published


@pytest.mark.parametrize("create_leads", [True, False])  # False: skipped leads to list
def test_outcome_digest_is_the_same_whatever_the_fetch(store_url, generated, create_leads):
    chats, sell, _manifest = generated
    result = sync(
        store_url, chats, sell, settings=settings_for(store_url), create_leads=create_leads
    )
    store = Store(store_url)
    try:
        rows = store.outcome_rows(result.run_id)
        digests = [
            OutcomeDigest.from_store(*store.outcome_digest_rows(result.run_id, size=size))
            for size in (1, 50, 10_000)
        ]
        report = json.loads(store.run_row(result.run_id)["report"])
        rejects = store.reject_rows(result.run_id)
        assert store.reject_count(result.run_id) == len(rejects) > 0
        assert len(store.reject_rows(result.run_id, limit=1)) == 1
    finally:
        store.dispose()
    kinds = set(rows["outcome"])
    assert {"invalid_email", "matched", "rejected"} <= kinds and (rows["match_count"] > 1).any()
    assert ("lead_skipped" in kinds) != create_leads
    expected = render_html(report, rows, rejects)
    for digest in digests:
        assert digest.rows == len(rows)
        assert render_html(report, digest, rejects) == expected
    # a store's first rejects and their count (as if there were more than the page lists)
    total = LIST_LIMIT + 101
    page = render_html(report, digests[0], rejects.head(1), reject_total=total)
    assert f'Rejects <span class="count">{total:,}</span>' in page
    assert page.count("<pre>") == 1 and "101 more not shown." in page


def _sections(page: str) -> str:
    """The charts and exception lists (the summary names the run, a dry run has none)."""
    return page[page.index('<section id="charts">') : page.index("</main>")]


def test_a_dry_runs_page_shows_what_the_run_then_shows(store_url, tmp_path, generated):
    chats, sell, _manifest = generated
    settings = settings_for(store_url)
    sync(store_url, chats, sell, settings=settings, dry_run=True, report_dir=tmp_path / "rep")
    result = sync(store_url, chats, sell, settings=settings, report_dir=tmp_path / "rep")
    dry = (tmp_path / "rep" / "dry-run.html").read_text(encoding="utf-8")
    real = (tmp_path / "rep" / f"run-{result.run_id}.html").read_text(encoding="utf-8")
    assert "Rejects <span" in _sections(real) and "Invalid emails" in _sections(real)
    assert _sections(dry) == _sections(real)
