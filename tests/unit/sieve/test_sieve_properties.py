"""Property and fuzz tests: random bytes and random well-formed scripts never raise
anything but SieveError; the wildcard matcher agrees with a regex reference."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sieve_helpers import DEFAULT_MSG, FakeHost

from postroom.sieve import Envelope, SieveError, compile_script, evaluate
from postroom.sieve.lexer import Kind, tokenize
from postroom.sieve.match import glob_match

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ random input


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_sieve_errors(data: bytes) -> None:
    try:
        compile_script(data)
    except SieveError:
        pass


_ALPHABET = st.sampled_from(list('ifelsifrequirekeepdiscardheader:is:contains"[]{}(),; \n#/*\\text:.0123456789KMG$'))


@FAST
@given(st.lists(_ALPHABET, max_size=200).map("".join))
def test_sieve_flavoured_text_only_raises_sieve_errors(text: str) -> None:
    try:
        script = compile_script(text)
    except SieveError:
        return
    try:
        evaluate(script, DEFAULT_MSG, Envelope("a@b.example", "c@d.example"), FakeHost())
    except SieveError:
        pass


# ------------------------------------------------------------------ random well-formed scripts

_strings = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_headers = st.sampled_from(["subject", "from", "to", "x-none", "date", "received"])
_match = st.sampled_from(["", ":is", ":contains", ":matches", ':value "gt"', ':count "ge"'])
_comparator = st.sampled_from(["", ':comparator "i;octet"', ':comparator "i;ascii-casemap"',
                               ':comparator "i;ascii-numeric"'])


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def gen_test(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["header", "address", "exists", "size", "true", "not", "anyof", "string",
                                 "envelope", "body", "hasflag", "date"] if depth < 3 else ["true", "exists"]))
    mt, comp = draw(_match), draw(_comparator)
    if comp.endswith('numeric"') and mt in (":contains", ":matches"):
        comp = ""
    keys = "[" + ", ".join(quote(draw(_strings)) for _ in range(draw(st.integers(1, 3)))) + "]"
    h = quote(draw(_headers))
    if kind == "header":
        return f"header {comp} {mt} {h} {keys}"
    if kind == "address":
        part = draw(st.sampled_from(["", ":localpart", ":domain", ":all", ":user", ":detail"]))
        return f'address {comp} {part} {mt} ["from", "to"] {keys}'
    if kind == "envelope":
        return f'envelope {mt} "from" {keys}'
    if kind == "exists":
        return f"exists {h}"
    if kind == "size":
        return f"size {draw(st.sampled_from([':over', ':under']))} {draw(st.integers(0, 10**6))}"
    if kind == "not":
        return "not " + draw(gen_test(depth + 1))
    if kind == "anyof":
        return "anyof (" + ", ".join(draw(gen_test(depth + 1)) for _ in range(draw(st.integers(1, 3)))) + ")"
    if kind == "string":
        return f"string {mt} {comp} {keys} {keys}"
    if kind == "body":
        return f"body {mt} {keys}"
    if kind == "hasflag":
        return f"hasflag {mt} {keys}"
    if kind == "date":
        return f'date {mt} {h} "year" {keys}'
    return "true"


@st.composite
def commands(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["keep", "discard", "fileinto", "redirect", "set", "addflag", "if", "stop"]
                                if depth < 3 else ["keep", "addflag", "set"]))
    if kind == "fileinto":
        return f'fileinto :copy "box{draw(st.integers(0, 3))}${{v}}";'
    if kind == "redirect":
        return f'redirect "u{draw(st.integers(0, 3))}@example.com";'
    if kind == "set":
        return f"set :lower \"v\" {quote(draw(_strings))};"
    if kind == "addflag":
        return f"addflag {quote(draw(_strings))};"
    if kind == "if":
        body = " ".join(draw(st.lists(commands(depth + 1), max_size=3)))
        return f"if {draw(gen_test())} {{ {body} }} else {{ keep; }}"
    return kind + ";"


REQUIRE = ('require ["fileinto", "copy", "variables", "imap4flags", "relational", "comparator-i;ascii-numeric",'
           ' "subaddress", "envelope", "body", "date", "index"];\n')


@FAST
@given(st.lists(commands(), max_size=6).map(" ".join))
def test_well_formed_scripts_compile_and_run(body: str) -> None:
    script = compile_script(REQUIRE + body)
    try:
        res = evaluate(script, DEFAULT_MSG, Envelope("alice@example.com", "bob+x@example.org"), FakeHost())
    except SieveError as e:  # limits may be hit (redirects); nothing else
        assert any(w in e.message for w in ("limit", "redirect", "invalid mailbox name"))
        return
    assert res.actions


@FAST
@given(st.lists(st.sampled_from(["keep", "stop", "discard", '"s"', "text:\nx\n.\n", "12K", ":tag", "[", "]",
                                 "{", "}", ";", ",", "(", ")", "# c\n", "/* c */"]), max_size=40))
def test_token_round_trip(parts: list[str]) -> None:
    """Joining tokens with blanks and re-lexing gives the same token kinds."""
    text = " ".join(parts)
    toks = tokenize(text)
    kinds = [t.kind for t in toks if t.kind is not Kind.EOF]
    expect = [k for k in (_kind(p) for p in parts) if k is not None]
    assert kinds == expect


def _kind(p: str) -> Kind | None:
    if p.startswith(("#", "/*")):
        return None
    if p.startswith(('"', "text:")):
        return Kind.STRING
    if p[0].isdigit():
        return Kind.NUMBER
    if p.startswith(":"):
        return Kind.TAG
    if p[0].isalpha():
        return Kind.IDENT
    return Kind.PUNCT


# ------------------------------------------------------------------ wildcard matcher


def _reference(value: str, pattern: str) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.DOTALL) is not None


@FAST
@given(st.text(alphabet="ab*?", max_size=8), st.text(alphabet="ab", max_size=10))
def test_glob_agrees_with_regex(pattern: str, value: str) -> None:
    got = glob_match(value, pattern, fold=False)
    assert (got is not None) == _reference(value, pattern)
    if got is not None:
        # The captures put back into the pattern rebuild the value.
        it = iter(got[1:])
        rebuilt = "".join(next(it) if c in "*?" else c for c in pattern)
        assert rebuilt == value


def test_glob_examples() -> None:
    assert glob_match("a@b@c", "*@*", False) == ["a@b@c", "a", "b@c"]
    assert glob_match("ABC", "a?c", True) == ["ABC", "B"]
    assert glob_match("ABC", "a?c", False) is None
    assert glob_match("a*b", "a\\*b", False) == ["a*b"]
    assert glob_match("axb", "a\\*b", False) is None
    assert glob_match("a\\b", "a\\\\b", False) == ["a\\b"]
    assert glob_match("", "*", False) == ["", ""]
    assert glob_match("", "?", False) is None
    # RFC 5228 §2.7.1: for i;octet and i;ascii-casemap "?" is one octet, not one character.
    assert glob_match("éa", "?a", False) is None
    got = glob_match("éa", "??a", False)
    assert got is not None and "".join(got[1:]).encode("utf-8", "surrogateescape") == "é".encode()
    assert glob_match("Café", "caf*", True) == ["Café", "é"]
    assert glob_match("CAFÉ", "café", True) is None  # only ASCII letters fold


# ------------------------------------------------------------------ round trips


@FAST
@given(st.lists(commands(), max_size=6).map(" ".join))
def test_parse_unparse_round_trip(body: str) -> None:
    from postroom.sieve.parser import parse
    from postroom.sieve.unparse import shape, unparse

    first = parse(REQUIRE + body)
    text = unparse(first)
    assert shape(parse(text)) == shape(first)
    compile_script(text)  # still valid


@FAST
@given(st.text(max_size=300))
def test_random_unicode_text_only_raises_sieve_errors(text: str) -> None:
    try:
        compile_script(text)
    except SieveError:
        pass


def test_unparse_examples() -> None:
    from postroom.sieve.parser import parse
    from postroom.sieve.unparse import unparse

    text = 'if anyof (not true, header :is ["a"] "b\\"c") { keep; } else { stop; }'
    assert unparse(parse(text)) == ('if anyof (not true, header :is ["a"] "b\\"c") {\n  keep;\n}\n'
                                    "else {\n  stop;\n}\n")


_EVERYTHING = compile_script(REQUIRE + '''
if anyof (header :matches ["subject", "from"] "*a?b*", address :domain :contains ["from", "to", "cc"] "x",
          address :detail "to" "d", envelope :user "to" "u", exists "x-a", size :over 10,
          body :content ["text", "image/png", "message/rfc822"] :contains "z", body :raw :matches "*\\r\\n*",
          date :zone "+0100" "date" "iso8601" "2020*", date :index 1 :last "received" "weekday" "1",
          header :count "ge" :comparator "i;ascii-numeric" "received" "2",
          address :value "lt" ["sender", "reply-to", "resent-from"] "m") {
    set :upperfirst "v" "${1}"; addflag "${v}"; fileinto :copy "x";
}
''')
_bodies = st.one_of(st.binary(max_size=600), st.lists(st.sampled_from([
    b"From: a@b\r\n", b"To: x <y@z>, (c) \"q\" <>\r\n", b"Subject: =?utf-8?b?w6k=?=\r\n", b" folded\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"--b--\r\n", b"\r\n", b"Date: Mon, 1 Jan 2024 0:0\r\n",
    b"Received: x; Tue, 2 Jan 2024 10:00:00 +0000\r\n", b"Content-Transfer-Encoding: base64\r\n", b"=?x?q?a?=\r\n",
    b"Content-Type: message/rfc822\r\n", b"\xff\xfe", b"text\n", b"To: g: a@b, c@d;\r\n"]), max_size=30).map(b"".join))


@FAST
@given(_bodies, st.sampled_from(["", "a@b.example", "u+d@x.example", "<>", "not an address"]))
def test_any_message_evaluates(raw: bytes, sender: str) -> None:
    res = evaluate(_EVERYTHING, raw, Envelope(sender, "u+d@x.example"), FakeHost())
    assert res.actions
