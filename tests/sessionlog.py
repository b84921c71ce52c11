"""Reading the connection-event lines of one session out of the ``postroom_log`` fixture."""

from __future__ import annotations

import time


def session_lines(log: list[str], user: str, timeout: float = 5.0) -> tuple[str, list[str]]:
    """(tag, the session's lines without the tag) of the session that logged in as ``user``,
    once its disconnect line is there (it is written as the server closes the connection)."""
    deadline = time.monotonic() + timeout
    while not any("disconnect" in line and user in line for line in log) and time.monotonic() < deadline:
        time.sleep(0.02)
    tag = next(line.split(" ")[0] for line in log if repr(user) in line)
    return tag, [line[len(tag) + 1:] for line in log if line.startswith(tag + " ")]


def check_failed_then_ok_login(log: list[str], user: str, ending: str) -> None:
    """connect, STARTTLS, one failed and one good login, then the disconnect ``ending``
    (logout, quit) with the user: the lines of a session that did just that."""
    _, lines = session_lines(log, user)
    assert lines[0] in ("127.0.0.1 connect", "127.0.0.1 connect tls"), lines
    assert lines[1].startswith("127.0.0.1 starttls TLSv1."), lines
    assert lines[2] == f"127.0.0.1 auth failed user={user!r}", lines
    assert lines[3] == f"127.0.0.1 auth ok user={user!r}", lines
    assert lines[4].startswith(f"127.0.0.1 disconnect {ending} in=") and lines[4].endswith(f" user={user}"), lines
    assert len(lines) == 5, lines
