"""Searching paths by words, once for each catalog: SQLite's FTS5 index (migration 0004) and PostgreSQL's
text search over a GIN index. Words match whole words; ``word*`` matches words that begin with it."""

from __future__ import annotations

import re
import time
import unicodedata
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, text

from mediamesh.catalog.schema import files, media
from mediamesh.errors import InvalidInput

_TERM = re.compile(r"(\w+)(\*?)")
_WORD = re.compile(r"\w+")
#: A prefix that stands for more words than this is searched as a prefix (slower on huge catalogs).
PREFIX_WORDS = 64


def search_terms(q: str) -> list[tuple[str, bool]]:
    """(word, is_prefix) pairs: a word matches whole words; ``word*`` matches words that begin with it."""
    terms = [(m.group(1)[:64], bool(m.group(2))) for m in _TERM.finditer(q)][:8]
    if not terms:
        raise InvalidInput("q: give at least one letter or digit to search for")
    return terms


def fold(word: str) -> str:
    """A word as the index's tokenizer stores it: case-folded, without diacritics."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _prefix_words(
    conn: Connection,
    start: str,
    stop: str,
    memo: dict[tuple[object, ...], Any],
    generation: object,
    ttl: float,
) -> list[str]:
    """The index's words in [start, stop), remembered (in the context's ``memo``) while the catalog does
    not change, and briefly: reading the vocabulary is slow."""
    key = ("prefix-words", generation, start, stop)
    known = memo.get(key)
    if known is not None and time.monotonic() - known[0] < ttl:
        return list(known[1])
    words = list(
        conn.execute(
            text("SELECT term FROM files_fts_vocab WHERE term >= :a AND term < :b LIMIT :n"),
            {"a": start, "b": stop, "n": PREFIX_WORDS + 1},
        ).scalars()
    )
    if len(memo) > 1000:
        memo.clear()
    memo[key] = (time.monotonic(), words)
    return words


def fts_query(
    conn: Connection, q: str, memo: dict[tuple[object, ...], Any], generation: object, ttl: float
) -> str:
    """An FTS5 query. A prefix is replaced by the words of the index it stands for, when they are few:
    FTS5 reads a prefix's matches all at once, but several whole words one page at a time."""
    parts = []
    for word, prefix in search_terms(q):
        start = fold(word) if prefix else ""
        if start:  # a word that folds to nothing (a lone combining mark) takes no index shortcut
            stop = start[:-1] + chr(ord(start[-1]) + 1)
            words = _prefix_words(conn, start, stop, memo, generation, ttl)
            if 0 < len(words) <= PREFIX_WORDS and all(_WORD.fullmatch(w) for w in words):
                parts.append("(" + " OR ".join(f'"{w}"' for w in words) + ")")
                continue
        parts.append(f'"{word}"*' if prefix else f'"{word}"')  # \w only: quoting is safe
    return " AND ".join(parts)


def pg_name_match(q: str) -> ColumnElement[bool]:
    """PostgreSQL: media with a location whose path has the words (the GIN index of migration 0004)."""
    query = " & ".join(f"{w}:*" if prefix else w for w, prefix in search_terms(q))
    words_of_path = text(
        # The expression of the GIN index (migration 0012): letters told by the database's collation.
        """to_tsvector('simple', regexp_replace(files.path COLLATE "default", '[^[:alnum:]]+', ' ', 'g'))"""
        " @@ to_tsquery('simple', :tsq)"
    ).bindparams(tsq=query)
    return media.c.id.in_(select(files.c.media_id).where(words_of_path))
