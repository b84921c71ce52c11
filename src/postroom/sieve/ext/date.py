"""RFC 5260: the ``date`` and ``currentdate`` tests (extension "date") and ``:index`` /
``:last`` on header, address and date (extension "index").

Without ``:zone`` or ``:originalzone`` a date is shown in the local zone, which is the
zone of ``Host.now()`` (the engine has no clock or zone of its own). An invalid ``:zone``
is ignored (local zone, a note in ``Result.log``), as Pigeonhole does.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone

from ..ast import Node
from ..interp import Context
from ..registry import NUMBER, REGISTRY, STRING, STRINGS, Spec, TagSpec
from ..validator import Checker

__all__ = ["DATE_PARTS", "date_part", "parse_zone"]

_ZONE = re.compile(r"([+-])([0-9]{2})([0-9]{2})")


def parse_zone(z: str) -> timezone | None:
    m = _ZONE.fullmatch(z)
    if m is None or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def _zone_str(dt: datetime, colon: bool = False) -> str:
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    h, m = divmod(abs(total), 60)
    return f"{sign}{h:02d}:{m:02d}" if colon else f"{sign}{h:02d}{m:02d}"


_MJD_EPOCH = datetime(1858, 11, 17).date()
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: RFC 5260 §4.2 date-part → its text.
DATE_PARTS = {
    "year": lambda d: f"{d.year:04d}",
    "month": lambda d: f"{d.month:02d}",
    "day": lambda d: f"{d.day:02d}",
    "date": lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
    "julian": lambda d: str((d.date() - _MJD_EPOCH).days),
    "hour": lambda d: f"{d.hour:02d}",
    "minute": lambda d: f"{d.minute:02d}",
    "second": lambda d: f"{d.second:02d}",
    "time": lambda d: f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}",
    # RFC 5260 §4.2 uses RFC 3339 date-time: a zero offset is written "Z" (as Pigeonhole does).
    "iso8601": lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + (
        "Z" if not d.utcoffset() else _zone_str(d, colon=True)),
    "std11": lambda d: (f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d} "
                        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} {_zone_str(d)}"),
    "zone": _zone_str,
    "weekday": lambda d: str((d.weekday() + 1) % 7),  # 0 = Sunday
}


def date_part(d: datetime, part: str) -> str | None:
    fn = DATE_PARTS.get(part.lower())
    return None if fn is None else fn(d)


def _parse_date(value: str) -> datetime | None:
    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:  # "-0000": zone unknown (RFC 5322 §3.3), taken as UTC
        dt = dt.replace(tzinfo=UTC)
    return dt


def _local_zone(ctx: Context) -> timezone:
    now = ctx.host.now()
    off = now.utcoffset() if now.tzinfo is not None else None
    return timezone(off or timedelta(0))


def _shift(ctx: Context, node: Node, dt: datetime) -> datetime | None:
    if ":originalzone" in node.tags:
        return dt
    if ":zone" in node.tags:
        tz = _zone_or_local(ctx, node)
        return dt.astimezone(tz)
    return dt.astimezone(_local_zone(ctx))


def _zone_or_local(ctx: Context, node: Node) -> timezone:
    """The ``:zone`` argument; one that is not ``+hhmm``/``-hhmm`` is ignored in favour of
    the local zone, with a note in the log (as Pigeonhole does)."""
    z = ctx.string(node.tags[":zone"])
    tz = parse_zone(z)
    if tz is None:
        ctx.result.log.append(f"{node.name}: ignoring invalid :zone {z!r}")
        return _local_zone(ctx)
    return tz


def _values(ctx: Context, node: Node, dates: list[datetime], part: str) -> list[str]:
    out = []
    for dt in dates:
        shifted = _shift(ctx, node, dt)
        if shifted is None:
            continue
        v = date_part(shifted, part)
        if v is not None:
            out.append(v)
    return out


def _date(ctx: Context, node: Node) -> bool:
    from ..core import pick_index

    header = ctx.string(node.positional[0])
    part = ctx.string(node.positional[1])
    raws = pick_index(ctx, node, ctx.msg.unfolded(header))
    dates = []
    for v in raws:
        if header.lower() == "received":  # the date-time follows the last ";" (RFC 5321 §4.4)
            v = v.rsplit(";", 1)[-1]
        dt = _parse_date(v)
        if dt is not None:
            dates.append(dt)
    return ctx.match(node, _values(ctx, node, dates, part), ctx.strings(node.positional[2]))


def _currentdate(ctx: Context, node: Node) -> bool:
    now = ctx.host.now()  # already in the local zone (the zone of Host.now)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if ":zone" in node.tags:
        now = now.astimezone(_zone_or_local(ctx, node))
    v = date_part(now, ctx.string(node.positional[0]))
    return ctx.match(node, [] if v is None else [v], ctx.strings(node.positional[1]))


def _check_part(c: Checker, node: Node, i: int) -> None:
    arg = node.positional[i]
    v = c.constant(arg)
    if v is not None and v.lower() not in DATE_PARTS:
        raise c.error(f"unknown date-part '{v}'", arg)  # type: ignore[arg-type]


def _check_date(c: Checker, node: Node) -> None:
    _check_part(c, node, 1)


def _check_currentdate(c: Checker, node: Node) -> None:
    _check_part(c, node, 0)


def _check_index(c: Checker, node: Node) -> None:
    idx = node.tags.get(":index")
    if idx is not None and getattr(idx, "value", 1) < 1:
        raise c.error(":index must be 1 or more", idx)


REGISTRY.extension("date")
REGISTRY.extension("index")
_ZONE_TAGS = {":zone": TagSpec(":zone", STRING, group="zone"), ":originalzone": TagSpec(":originalzone", group="zone")}
REGISTRY.test(Spec("date", True, _date, extension="date", positional=(STRING, STRING, STRINGS), match=True,
                   tags=dict(_ZONE_TAGS), check=_check_date))
REGISTRY.test(Spec("currentdate", True, _currentdate, extension="date", positional=(STRING, STRINGS), match=True,
                   tags={":zone": TagSpec(":zone", STRING, group="zone")}, check=_check_currentdate))
REGISTRY.add_tag(("header", "address", "date"), TagSpec(":index", NUMBER, extension="index"))
REGISTRY.add_tag(("header", "address", "date"), TagSpec(":last", extension="index", requires=(":index",)))
for _t in ("header", "address", "date"):
    _prev = REGISTRY.tests[_t].check

    def _chained(c: Checker, node: Node, _prev: object = _prev) -> None:
        _check_index(c, node)
        if _prev is not None:
            _prev(c, node)  # type: ignore[operator]

    REGISTRY.tests[_t].check = _chained
