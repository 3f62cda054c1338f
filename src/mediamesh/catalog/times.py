"""Timestamps: stored in UTC; SQLite hands them back without a zone, so reads are made aware again."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """A stored timestamp with its zone (UTC), whichever database it came from."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat() if value is not None else None


def iso_raw(value: datetime | str | None) -> str | None:
    """ISO form of a timestamp as a driver returns it when read without SQLAlchemy's type handling
    (SQLite: text in UTC; PostgreSQL: a datetime)."""
    if value is None or isinstance(value, datetime):
        return iso(value)
    return iso(datetime.fromisoformat(value))
