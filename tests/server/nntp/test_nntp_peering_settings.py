"""The pure parts of peering: ``[[nntp.peers]]`` parsing, which peers an article is queued
for, Path entries, and the bytes the feed sends (no server needed)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from postroom.config import from_dict
from postroom.nntp import feed
from postroom.nntp.peering import path_entries
from postroom.nntp.settings import read_settings


def settings(nntp: dict[str, Any]) -> tuple[Any, list[str]]:
    problems: list[str] = []
    s = read_settings(from_dict({"nntp": nntp}, Path("/tmp/x.toml")), problems)
    return s, problems


def test_peers_parsed() -> None:
    s, problems = settings({"feed_retry": ["10s", "1m"], "feed_max_attempts": 7, "peers": [
        {"name": "news.example.net", "host": "news.example.net:433", "tls": "implicit", "groups": "comp.*,!comp.x",
         "streaming": False, "accept_from": ["192.0.2.7", "2001:db8::/64"], "account": "Peer@Example.org"},
        {"name": "feeder.example", "accept_from": ["198.51.100.0/24"]},
    ]})
    assert problems == []
    a, b = s.peers
    assert (a.name, a.host, a.port, a.tls, a.groups, a.streaming, a.account) == (
        "news.example.net", "news.example.net", 433, "implicit", "comp.*,!comp.x", False, "peer@example.org")
    assert a.accept_from == (ipaddress.ip_network("192.0.2.7/32"), ipaddress.ip_network("2001:db8::/64"))
    assert (b.host, b.groups, b.streaming) == ("", "*", True)
    assert s.feed_retry == (10.0, 60.0) and s.feed_max_attempts == 7


@pytest.mark.parametrize("peer, problem", [
    ({"host": "x:119"}, "nntp.peers[0].name"),
    ({"name": "a!b"}, "nntp.peers[0].name"),
    ({"name": "p", "host": "x:notaport"}, "nntp.peers[0].host"),
    ({"name": "p", "tls": "maybe"}, "nntp.peers[0].tls"),
    ({"name": "p", "groups": "comp.[ab]"}, "nntp.peers[0].groups"),
    ({"name": "p", "accept_from": ["not-an-address"]}, "nntp.peers[0].accept_from"),
    ({"name": "p", "colour": "blue"}, "nntp.peers[0].colour: unknown key"),
])
def test_bad_peer_config_is_reported(peer: dict[str, Any], problem: str) -> None:
    _s, problems = settings({"peers": [peer]})
    assert any(p.startswith(problem) for p in problems), problems


def test_duplicate_peer_and_bad_retry_reported() -> None:
    _s, problems = settings({"peers": [{"name": "p"}, {"name": "p"}], "feed_retry": ["soon"],
                             "feed_max_attempts": 0})
    assert any("configured twice" in p for p in problems)
    assert any(p.startswith("nntp.feed_retry[0]") for p in problems)
    assert any(p.startswith("nntp.feed_max_attempts") for p in problems)


def test_path_entries() -> None:
    assert path_entries("a.example!.POSTED.192.0.2.1!b.example!!c.example!not-for-mail") == [
        "a.example", "b.example", "c.example", "not-for-mail"]
    assert path_entries(" Inn.Test!x ") == ["inn.test", "x"]


def test_queue_statements_follow_groups_and_path() -> None:
    cfg = from_dict({"nntp": {"peers": [
        {"name": "inn.test", "host": "127.0.0.1:119", "groups": "local.*,!local.secret"},
        {"name": "all.test", "host": "127.0.0.1:120"},
        {"name": "feeder.test", "accept_from": ["127.0.0.2"]},  # no host: never fed
    ]}}, Path("/tmp/x.toml"))

    def peers(groups: tuple[str, ...], path: str) -> list[str]:
        rows = feed.queue_statements(cfg, message_id="<m@x>", newsgroups=groups, path=path, now=5.0)
        for sql, args in rows:
            assert sql.startswith("INSERT INTO feed") and args[1:] == ("<m@x>", 5.0)
        return [args[0] for _sql, args in rows]

    assert peers(("local.a",), "postroom.test!not-for-mail") == ["inn.test", "all.test"]
    assert peers(("local.secret",), "postroom.test!x") == ["all.test"]
    assert peers(("local.secret", "local.b"), "postroom.test!x") == ["inn.test", "all.test"]
    assert peers(("local.a",), "postroom.test!INN.test!x") == ["all.test"]  # it has it already
    assert peers(("comp.a",), "x") == ["all.test"]


def test_feed_strips_xref_only() -> None:
    raw = (b"Path: a!b\r\nXref: here g:1\r\n\tg2:5\r\nSubject: xref: in the subject\r\n\r\n"
           b"Xref: in the body stays\r\n")
    assert feed._for_peer(raw) == (b"Path: a!b\r\nSubject: xref: in the subject\r\n\r\n"
                                   b"Xref: in the body stays\r\n")
    plain = b"Path: a\r\n\r\nbody\r\n"
    assert feed._for_peer(plain) is plain
