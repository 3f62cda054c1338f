"""Scans on a schedule, stored with each source: an interval (``30m``, ``6h``, ``1d``) counted from the
source's last scan, or a cron expression (``0 3 * * *``, server local time).

A source that is unmounted or offline is skipped; when it comes back, its overdue scan runs at the next
tick. Scheduled scans go through the server's scan queue like every other scan (services/scheduler.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from sqlalchemy import func, select

from mediamesh.catalog.schema import scans, sources
from mediamesh.catalog.times import aware, now_utc
from mediamesh.context import Context
from mediamesh.errors import InvalidInput

log = logging.getLogger(__name__)

_INTERVAL = re.compile(r"(?:every\s+)?([0-9]{1,9})\s*(s|sec|m|min|h|hr|d|day|w|week)s?", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}
_UNITS |= {"w": 604800, "week": 604800}
MIN_INTERVAL = 60
MAX_INTERVAL = 366 * 86400  # a year: any longer is no schedule (and would overflow a date)
OFF = ("", "off", "none", "never")


@dataclass(frozen=True)
class Schedule:
    text: str
    interval: timedelta | None = None
    cron: str | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first time a scan is due after one that started at ``moment``."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        local = moment.astimezone()  # cron fields mean the server's local time
        return croniter(self.cron, local).get_next(datetime)


def parse_schedule(text: str) -> Schedule:
    """An interval or a cron expression; InvalidInput with an example otherwise."""
    value = " ".join(text.split())
    match = _INTERVAL.fullmatch(value)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if seconds < MIN_INTERVAL:
            raise InvalidInput(f"schedule {text!r} is too frequent: at least every {MIN_INTERVAL // 60}m")
        if seconds > MAX_INTERVAL:
            raise InvalidInput(f"schedule {text!r} is too far apart: at most every {MAX_INTERVAL // 86400}d")
        return Schedule(value, interval=timedelta(seconds=seconds))
    if len(value.split()) == 5 and croniter.is_valid(value):
        schedule = Schedule(value, cron=value)
        try:  # "0 0 31 2 *" is valid cron, yet never comes
            schedule.next_after(now_utc())
        except Exception:
            raise InvalidInput(f"schedule {text!r} never comes round: check its day and month") from None
        return schedule
    raise InvalidInput(
        f"schedule {text!r} is neither an interval (30m, 6h, 1d) nor a cron expression (0 3 * * *)"
    )


def validate_schedule(text: str | None) -> str | None:
    """The schedule to store: None for no schedule ('', 'off'), else the checked text."""
    if text is None or text.strip().lower() in OFF:
        return None
    return parse_schedule(text).text


def due_sources(ctx: Context, now: datetime | None = None) -> list[str]:
    """Names of the sources whose scheduled scan is due now."""
    now = now or now_utc()
    last_scan = (
        select(scans.c.source_id, func.max(scans.c.started_at).label("last"))
        .group_by(scans.c.source_id)
        .subquery()
    )
    with ctx.catalog.read() as conn:
        rows = conn.execute(
            select(sources, last_scan.c.last).outerjoin(last_scan, last_scan.c.source_id == sources.c.id)
        ).all()
    due = []
    for row in rows:
        text = (row.options or {}).get("schedule")
        if not text or not row.enabled or row.health_status == "offline":
            continue
        try:
            if _is_due(parse_schedule(text), aware(row.last), aware(row.created_at), now):
                due.append(row.name)
        except Exception as exc:  # stored before a rule changed: say so; one source never stops the round
            log.warning("source %s has an unusable schedule %r (%s); ignored", row.name, text, exc)
    return due


def _is_due(schedule: Schedule, last: datetime | None, created: datetime | None, now: datetime) -> bool:
    if last is None:  # never scanned: an interval is due now; cron waits for its next time
        if schedule.interval is not None:
            return True
        last = created or now
    return schedule.next_after(last) <= now
