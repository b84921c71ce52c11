import pytest

from postroom.smtp.address import NULL, AddressError, Path, parse_params, parse_path
from postroom.smtp.policy import routing_hazard


@pytest.mark.parametrize("text,local,domain,rest", [
    ("<joe@Example.ORG>", "joe", "example.org", ""),
    (" <joe@example.org>", "joe", "example.org", ""),
    ("<joe.bloggs+tag@example.org> SIZE=10", "joe.bloggs+tag", "example.org", "SIZE=10"),
    ("<j!o%e@example.org>", "j!o%e", "example.org", ""),
    ("<üser@exämple.org>", "üser", "exämple.org", ""),
    ("<joe@[192.0.2.1]>", "joe", "[192.0.2.1]", ""),
])
def test_valid(text, local, domain, rest):
    path, r = parse_path(text)
    assert (path.local, path.domain, r) == (local, domain, rest)


def test_null_and_postmaster():
    assert parse_path("<>", allow_null=True) == (NULL, "")
    with pytest.raises(AddressError):
        parse_path("<>")
    assert parse_path("<Postmaster>", allow_bare_postmaster=True)[0] == Path("postmaster", "")
    with pytest.raises(AddressError):
        parse_path("<joe>", allow_bare_postmaster=True)


@pytest.mark.parametrize("text", [
    "joe@example.org", "<joe@example.org", "<joe@example.org.>", "<.joe@example.org>",
    "<joe.@example.org>", "<jo..e@example.org>", "<joe@>", "<@example.org>", "<joe@exa mple.org>",
    "<joe@-example.org>", "<joe@example..org>", "<joe@example.org>x", '<"unterminated@example.org>',
    "<joe@ex_ample.org>", "<" + "a" * 65 + "@example.org>", "<host!joe>", "<joe@[]>",
    "<@a.example,@b.example joe@c.example>",
])
def test_invalid(text):
    with pytest.raises(AddressError):
        parse_path(text)


@pytest.mark.parametrize("text,why", [
    ("<@relay.example:joe@victim.example>", "source route"),
    ("<@a.example,@b.example:joe@victim.example>", "source route"),
    ('<"joe@victim.example"@example.org>', "quoted"),
    ('<"joe"@example.org>', "quoted"),
    ("<joe%victim.example@example.org>", "'%'"),
    ("<victim.example!joe@example.org>", "'!'"),
    ("<joe@[127.0.0.1]>", "literal"),
    ("<joe@[IPv6:::1]>", "literal"),
])
def test_relay_forms_are_flagged(text, why):
    path, _ = parse_path(text)
    hazard = routing_hazard(path)
    assert hazard and why in hazard


def test_quoted_local_part_unescaped():
    path, _ = parse_path(r'<"a\"b c"@example.org>')
    assert path.local == 'a"b c' and path.quoted
    assert str(path) == r'"a\"b c"@example.org'


def test_params():
    assert parse_params("SIZE=10 body=8BITMIME SMTPUTF8") == {"SIZE": "10", "BODY": "8BITMIME",
                                                              "SMTPUTF8": None}
    for bad in ("SIZE=1 SIZE=2", "=x", "A=", "-X=1", "A=b=c\x01"):
        with pytest.raises(AddressError):
            parse_params(bad)
