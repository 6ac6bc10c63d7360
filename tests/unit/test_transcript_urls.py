"""Transcript links: the vectorized join gives what formatting each link does."""

from urllib.parse import quote

import pandas as pd
import pytest

from etl.transform.plan import PlanContext, transcript_urls

TEMPLATES = [
    "https://{subdomain}.zendesk.com/chat/agent#archives/{chat_id}",
    "https://chat.example/{subdomain}/{chat_id}?from=crm",
    "https://chat.example/{{braces}}/{chat_id}",
    "https://chat.example/{chat_id}/again/{chat_id}",
]
IDS = [
    ["2011.1.ABCD.xyz", "plain", "ok-1_2~3"],  # nothing to quote
    ["2011.1.ABC", "has space/and é", "a#b"],  # some must be quoted
    [],
]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("ids", IDS)
def test_links_as_formatted_one_by_one(template, ids):
    ctx = PlanContext(
        now=pd.Timestamp("2026-11-01", tz="UTC"), transcript_url_template=template, subdomain="acme"
    )
    chat_ids = pd.Series(ids, index=range(10, 10 + len(ids)), dtype=object)
    links = transcript_urls(chat_ids, ctx)
    expected = [template.format(chat_id=quote(c, safe=".-_~"), subdomain="acme") for c in ids]
    assert links.tolist() == expected
    assert list(links.index) == list(chat_ids.index)


def test_no_links_without_a_subdomain():
    ctx = PlanContext(
        now=pd.Timestamp("2026-11-01", tz="UTC"), transcript_url_template=TEMPLATES[0]
    )
    assert transcript_urls(pd.Series(["a", "b"]), ctx).isna().all()
