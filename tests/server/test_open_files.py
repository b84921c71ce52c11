"""``serve`` raises RLIMIT_NOFILE for ``[limits] connections`` and says so when the hard limit is too low
(docs/architecture.md, "Open files")."""

from __future__ import annotations

import logging
import resource

import pytest

from postroom.server import SPARE_FILES, raise_open_files


def test_a_limit_within_reach_is_raised_silently(caplog):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft + 1 if hard == resource.RLIM_INFINITY or soft + 1 + SPARE_FILES <= hard else 10
    with caplog.at_level(logging.WARNING):
        room = raise_open_files(wanted, logging.getLogger("postroom.server"))
    assert room >= wanted and not caplog.records
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= min(wanted + SPARE_FILES, soft)


def test_past_the_hard_limit_it_warns_with_what_it_can_hold(caplog):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit to run into on this machine")
    with caplog.at_level(logging.WARNING):
        room = raise_open_files(hard * 2, logging.getLogger("postroom.server"))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard  # as far as it goes
    assert room == hard - SPARE_FILES
    (rec,) = [r for r in caplog.records if "open-files limit" in r.getMessage()]
    assert f"holds about {hard - SPARE_FILES} connections" in rec.getMessage()
    assert f"[limits] connections = {hard * 2}" in rec.getMessage()
