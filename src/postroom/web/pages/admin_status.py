"""``/admin/status`` and ``/api/v1/admin/status``: connections, deliveries, queue depth, recent
errors, and charts of the last hours (services/admin_status.py).

The charts are inline SVG drawn here on the server (no JavaScript, nothing to load), each with a
text table of the same numbers for screen readers and for copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..render import render
from ..services import admin_status as status
from ..services.admin_common import utc
from ..site import Role, Site, ctx_of

WIDTH, HEIGHT, PAD = 600, 120, 4
NUMBER = {"type": "number"}
SAMPLE = {"type": "object", "properties": {name: NUMBER for name in status.Sample.__slots__},
          "required": list(status.Sample.__slots__), "additionalProperties": False}
STATUS = {
    "type": "object",
    "properties": {
        "now": SAMPLE,
        "history": {"type": "array", "items": SAMPLE,
                    "description": "one sample a minute, oldest first; counters are totals since start"},
        "log": {"type": "array", "items": {
            "type": "object",
            "properties": {"t": NUMBER, "level": {"type": "string"}, "logger": {"type": "string"},
                           "message": {"type": "string"}},
            "required": ["t", "level", "logger", "message"], "additionalProperties": False}},
    },
    "required": ["now", "history", "log"],
    "additionalProperties": False,
}


def setup(site: Site) -> None:
    site.page("GET", "/admin/status", status_page, role=Role.ADMIN)
    site.nav(Role.ADMIN, "/admin/status", "Server status")
    site.api("GET", "/api/v1/admin/status", api_status, summary="Server status: metrics now, the samples of "
             "the last hours, recent warnings and errors", response=STATUS, tag="admin")


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    label: str
    unit: str
    points: list[tuple[float, float]]  # (time, value)
    polyline: str  # SVG coordinates, "" with fewer than two points
    top: float  # the value at the top edge
    first: str  # times at the left and right edges
    last: str


def chart(key: str, label: str, unit: str, points: list[tuple[float, float]]) -> Chart:
    """Scale ``points`` into the WIDTH×HEIGHT box: time left to right, zero at the bottom."""
    top = max((v for _, v in points), default=0.0)
    top = top if top > 0 else 1.0
    coords = ""
    if len(points) >= 2:
        t0, t1 = points[0][0], points[-1][0]
        span = (t1 - t0) or 1.0
        coords = " ".join(f"{PAD + (t - t0) / span * (WIDTH - 2 * PAD):.1f},"
                          f"{HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD):.1f}" for t, v in points)
    first = utc(points[0][0], "%H:%M") if points else ""
    last = utc(points[-1][0], "%H:%M") if points else ""
    return Chart(key, label, unit, points, coords, top, first, last)


async def status_page(request: web.Request) -> web.StreamResponse:
    data = await status.status(request)
    charts = [chart(c["key"], c["label"], c["unit"], c["points"]) for c in data["charts"]]
    return render(request, "admin/status.html", {"now": data["now"], "charts": charts, "log": data["log"],
                                                 "hours": data["hours"], "utc": utc,
                                                 "width": WIDTH, "height": HEIGHT})


async def api_status(request: web.Request, body: None) -> dict[str, Any]:
    data = await status.status(request)
    sampler = status.sampler_for(ctx_of(request))
    return {"now": data["now"].as_json(), "history": [s.as_json() for s in sampler.samples],
            "log": [line.as_json() for line in data["log"]]}
