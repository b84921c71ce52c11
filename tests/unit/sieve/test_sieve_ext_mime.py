"""RFC 5703 mime, foreverypart/break and extracttext over a real MIME tree."""

from __future__ import annotations

import pytest
from sieve_helpers import message, run, truth

from postroom.sieve import Limits, SieveLimitError, SieveSyntaxError, compile_script
from postroom.sieve.api import Discard, FileInto, Keep

MSG = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: Quarterly report\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe, the report is attached.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"\r\n"
    b"<p>The report is attached.</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="q3.pdf"\r\n'
    b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9-important.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: Carol <carol@example.net>\r\n"
    b"Subject: inner message\r\n"
    b"\r\n"
    b"Forwarded body.\r\n"
    b"--outer--\r\n"
)
REQ = '["mime", "foreverypart", "extracttext", "variables", "fileinto", "relational", "comparator-i;ascii-numeric"]'


def boxes(script: str, msg: bytes = MSG) -> list[str]:
    return [a.mailbox for a in run(f"require {REQ};\n" + script, msg=msg).actions if isinstance(a, FileInto)]


def test_foreverypart_visits_every_part_in_order() -> None:
    got = boxes('foreverypart { if header :mime :matches :contenttype "content-type" "*" { set "s" "${s} ${1}"; } }'
                'fileinto "${s}";')
    # the last one is the embedded message: text/plain by default
    assert got == [(" multipart/mixed multipart/alternative text/plain text/html application/pdf message/rfc822"
                    " text/plain")]


def test_single_part_message_is_one_part() -> None:
    msg = message("From: a@example.com", "Subject: x")  # no Content-Type: text/plain default
    assert boxes('foreverypart { if header :mime :type "content-type" "text" { fileinto "t"; } }', msg) == ["t"]


def test_nested_loop_walks_below_current_part() -> None:
    script = '''foreverypart :name "outer" {
        if header :mime :subtype "content-type" "alternative" {
            foreverypart { if header :mime :matches :subtype "content-type" "*" { fileinto "in-${1}"; } }
        }
    }'''
    assert boxes(script) == ["in-plain", "in-html"]


def test_break_and_named_break() -> None:
    script = '''foreverypart { if header :mime :type "content-type" "text" { fileinto "first-text"; break; } }
    foreverypart :name "a" {
        foreverypart :name "b" { fileinto "inner"; break :name "a"; }
        fileinto "never";
    }
    fileinto "after";'''
    assert boxes(script) == ["first-text", "inner", "after"]


def test_rfc_example() -> None:
    script = '''foreverypart {
        if allof (header :mime :param "filename" :contains "Content-Disposition" "important",
                  header :mime :subtype "Content-Type" "pdf") {
            fileinto "important"; break;
        }
    }'''
    assert boxes(script) == ["important"]  # the RFC 2231 filename is decoded


@pytest.mark.parametrize("test,expected", [
    ('header :mime :type "content-type" "multipart"', True),  # top level, outside a loop
    ('header :mime :subtype "content-type" "mixed"', True),
    ('header :mime :param "boundary" "content-type" "outer"', True),
    ('header :mime :anychild :contenttype "content-type" "application/pdf"', True),
    ('header :mime :anychild :contenttype "content-type" "image/png"', False),
    ('header :mime :anychild :param "charset" "content-type" "us-ascii"', True),
    ('header :mime :anychild :type "content-disposition" "attachment"', True),
    ('header :mime :anychild "subject" "inner message"', True),  # the embedded message's header
    ('header :mime "subject" "inner message"', False),
    ('header :mime "subject" "quarterly report"', True),
    ('address :mime :anychild :domain "from" "example.net"', True),
    ('address :mime :domain "from" "example.net"', False),
    ('exists :mime :anychild "content-disposition"', True),
    ('exists :mime :anychild ["content-disposition", "subject"]', False),  # no single part has both
    ('exists :mime "content-disposition"', False),
    ('header :mime :anychild :count "ge" :comparator "i;ascii-numeric" "content-type" "1"', True),
])
def test_mime_tests(test: str, expected: bool) -> None:
    assert truth(test, REQ, msg=MSG) is expected


def test_anychild_in_loop_looks_below_current_part() -> None:
    script = '''foreverypart {
        if header :mime :anychild :subtype "content-type" "html" {
            if header :mime :matches :contenttype "content-type" "*" { fileinto "${1}"; }
        }
    }'''
    assert boxes(script) == ["multipart/mixed", "multipart/alternative"]


def test_extracttext() -> None:
    script = '''foreverypart {
        if header :mime :type "content-type" "text" {
            extracttext :first 5 :lower "t"; fileinto "x-${t}";
        }
        if header :mime :subtype "content-type" "pdf" { extracttext "bin"; fileinto "pdf-[${bin}]"; }
    }'''
    assert boxes(script) == ["x-grüße", "x-<p>th", "pdf-[]", "x-forwa"]


def test_extracttext_whole_text_and_modifiers() -> None:
    script = '''foreverypart { if header :mime :subtype "content-type" "html" {
        extracttext :length "n"; fileinto "${n}"; break; } }'''
    assert boxes(script) == [str(len("<p>The report is attached.</p>"))]


def test_plain_tests_unchanged_without_mime() -> None:
    assert truth('header "content-type" "multipart/mixed; boundary=\\"outer\\""', REQ, msg=MSG)
    assert not truth('exists "content-disposition"', REQ, msg=MSG)


def test_loop_budget() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(300))
    msg = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    with pytest.raises(SieveLimitError):
        run(f"require {REQ}; foreverypart {{ foreverypart {{ }} if true {{ }} }}", msg=msg,
            limits=Limits(max_steps=500))


def test_editheader_visible_to_top_level_mime_tests() -> None:
    res = run('require ["mime", "editheader"]; addheader "X-Added" "yes"; '
              'if header :mime "x-added" "yes" { discard; }', msg=MSG)
    assert Discard() in res.actions


@pytest.mark.parametrize("script,msg", [
    ('require "foreverypart"; break;', "only allowed inside foreverypart"),
    ('require "foreverypart"; foreverypart :name "a" { break :name "b"; }', "no enclosing foreverypart"),
    ('require "foreverypart"; foreverypart :name "a" { } foreverypart { break :name "a"; }', "no enclosing"),
    ('require "foreverypart"; foreverypart :name "a" { foreverypart :name "a" { } }', "already used"),
    ('require "foreverypart"; foreverypart;', "needs a block"),
    ('require "foreverypart"; foreverypart "x" { }', "positional"),
    ('require "foreverypart"; foreverypart :name 13 { }', "must be a string"),
    ('foreverypart { }', 'needs require "foreverypart"'),
    ('require ["extracttext", "variables"]; extracttext "x";', "only allowed inside foreverypart"),
    ('require ["foreverypart", "extracttext"]; foreverypart { extracttext "x"; }', 'needs require "variables"'),
    ('require ["foreverypart", "extracttext", "variables"]; foreverypart { extracttext "1x"; }',
     "not a valid variable name"),
    ('require ["foreverypart", "variables"]; foreverypart { extracttext "x"; }', 'needs require "extracttext"'),
    ('require "mime"; if header :anychild "subject" "x" { }', "needs :mime"),
    ('require "mime"; if header :type "content-type" "x" { }', "needs :mime"),
    ('require "mime"; if header :mime :type :subtype "content-type" "x" { }', "conflicts"),
    ('require "mime"; if address :mime :param "x" "to" "x" { }', "unknown tag"),
    ('require "mime"; if exists :mime :type "to" { }', "unknown tag"),
    ('if header :mime "content-type" "x" { }', 'needs require "mime"'),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_ihave_mime() -> None:
    res = run('require ["ihave", "fileinto"]; if ihave ["mime", "foreverypart"] { foreverypart { '
              'if header :mime :subtype "content-type" "pdf" { fileinto "pdf"; } } }', msg=MSG)
    assert res.actions == [FileInto("pdf")]


def test_no_match_keeps() -> None:
    assert run(f"require {REQ}; foreverypart {{ }}", msg=MSG).actions == [Keep(implicit=True)]
