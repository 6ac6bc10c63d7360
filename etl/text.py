"""Small facts about text that readers and transforms share."""

from __future__ import annotations

import re

# Han, kana (full and half width) and Hangul: names in these scripts are written family name first.
CJK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f]"
)


def is_cjk(text: str | None) -> bool:
    return bool(text) and bool(CJK.search(text))


def person_name(first: str | None, last: str | None) -> str | None:
    """A person's display name: "first last", or "last first" for CJK names (山田 太郎)."""
    parts = [
        p for p in ((last, first) if is_cjk(f"{first or ''}{last or ''}") else (first, last)) if p
    ]
    return " ".join(parts) or None
