"""RFC 5228 §2 and §8: lexical structure, grammar, and compile-time errors with line and
column (table-driven)."""

from __future__ import annotations

import pytest

from postroom.sieve import Limits, SieveLimitError, SieveSyntaxError, compile_script
from postroom.sieve.lexer import Kind, tokenize
from postroom.sieve.parser import parse


def values(text: str) -> list[object]:
    return [t.value for t in tokenize(text) if t.kind is not Kind.EOF]


@pytest.mark.parametrize("text,expected", [
    ('"abc"', ["abc"]),
    (r'"a\"b\\c"', ['a"b\\c']),
    (r'"a\qb"', ["aqb"]),  # §2.4.2: an undefined escape drops the backslash
    ('"two\nlines"', ["two\nlines"]),
    ("1 1K 2M 3G 10k", [1, 1024, 2 << 20, 3 << 30, 10240]),
    ("# comment\nkeep;", ["keep", ";"]),
    ("/* multi\nline */ stop ;", ["stop", ";"]),
    ("IF :Is", ["if", "is"]),  # tag values are lowercased, without the colon
    ("text:\r\nline 1\r\n..dot\r\n.\r\n", ["line 1\r\n.dot\r\n"]),
    ("text: # comment here\nx\n.\n", ["x\r\n"]),
    ("text:\n.\n", [""]),
    ("[ \"a\" , \"b\" ]", ["[", "a", ",", "b", "]"]),
])
def test_tokens(text: str, expected: list[object]) -> None:
    assert values(text) == expected


def test_token_positions() -> None:
    toks = tokenize('require "x";\n  if true {\n    keep;\n  }')
    pos = [(t.value, t.line, t.column) for t in toks if t.kind is not Kind.EOF]
    assert pos[0] == ("require", 1, 1)
    assert pos[1] == ("x", 1, 9)
    assert ("if", 2, 3) in pos
    assert ("keep", 3, 5) in pos


@pytest.mark.parametrize("text,line,column,fragment", [
    ('keep', 1, 5, "expected ';'"),
    ('"unterminated', 1, 1, "unterminated string"),
    ("/* open", 1, 1, "unterminated /*"),
    ("keep;\n  text:\nabc\n", 2, 3, "unterminated text:"),
    ("keep;\nfoo;", 2, 1, "unknown command"),
    ("if foo { keep; }", 1, 4, "unknown test"),
    ("if true { keep; ", 1, 17, "missing '}'"),
    ("keep :bogus;", 1, 6, "unknown tag :bogus"),
    ("fileinto \"x\";", 1, 1, "needs require \"fileinto\""),
    ("require \"nonesuch\";", 1, 9, "unsupported extension"),
    ("keep;\nrequire \"fileinto\";", 2, 1, "require must come before"),
    ("if true { require \"fileinto\"; }", 1, 11, "require must come before"),
    ("elsif true { keep; }", 1, 1, "must follow 'if'"),
    ("if true { keep; } keep; else { keep; }", 1, 25, "must follow 'if'"),
    ("if header \"subject\" { keep; }", 1, 4, "takes 2 positional"),
    ("if size 100 { keep; }", 1, 4, "needs :over or :under"),
    ("if size :over :under 1 { keep; }", 1, 15, "conflicts with :over"),
    ("if header :is :contains \"a\" \"b\" { keep; }", 1, 15, "conflicts with :is"),
    ("if header :comparator \"i;nope\" \"a\" \"b\" { keep; }", 1, 23, "unknown comparator"),
    ("if header \"a\" :is \"b\" { keep; }", 1, 15, "must come before"),
    ("if true keep;", 1, 1, "needs a block"),
    ("if true { keep }", 1, 16, "expected ';' or '{'"),
    ("redirect \"not an address\";", 1, 10, "not a valid address"),
    ("if address \"subject\" \"x\" { keep; }", 1, 12, "not a header that holds addresses"),
    ("if address \"bad name\" \"x\" { keep; }", 1, 12, "not a valid header field name"),
    ("if header \"bad name\" \"x\" { keep; }", 1, 1, None),  # accepted; never matches
    ("stop { keep; }", 1, 1, "takes no block"),
    ("if (true) { keep; }", 1, 1, None),  # a test list of one is fine for if
    ("if (true, false) { keep; }", 1, 1, "exactly one test"),
    ("if allof true { keep; }", 1, 4, None),
    ("keep 12;", 1, 6, "takes 0 positional"),
    ("if not { keep; }", 1, 4, "exactly one test"),
    ("x\x00;", 1, 2, "NUL"),
    ("keep; @", 1, 7, "unexpected character"),
    ("if exists [\"a\" \"b\"] { keep; }", 1, 16, "expected ',' or ']'"),
    ("99999999999999999999999G", 1, 1, "number too large"),
])
def test_compile_errors(text: str, line: int, column: int, fragment: str | None) -> None:
    if fragment is None:
        compile_script(text)
        return
    with pytest.raises(SieveSyntaxError) as ei:
        compile_script(text)
    assert fragment in ei.value.message
    assert (ei.value.line, ei.value.column) == (line, column), str(ei.value)


def test_error_str_names_position() -> None:
    with pytest.raises(SieveSyntaxError) as ei:
        compile_script("keep;\n\n   frob;")
    assert str(ei.value).startswith("line 3, column 4: ")


@pytest.mark.parametrize("opener,closer", [("not " * 10_000 + "true", ""), ("if true {" * 10_000, "}" * 10_000),
                                           ("if anyof(" * 10_000 + "true" + ")" * 10_000, "")])
def test_deep_nesting_is_a_clean_error(opener: str, closer: str) -> None:
    text = f"if {opener} {{ keep; }}" if opener.startswith("not") else opener + "keep;" + closer
    if opener.startswith("if anyof"):
        text = opener + " { keep; }"
    with pytest.raises(SieveSyntaxError) as ei:
        compile_script(text)
    assert "nesting too deep" in ei.value.message


def test_nesting_limit_from_limits() -> None:
    script = "if true { " * 5 + "keep;" + " }" * 5
    compile_script(script, limits=Limits(max_nesting=5))
    with pytest.raises(SieveSyntaxError):
        compile_script(script, limits=Limits(max_nesting=4))


def test_huge_nesting_setting_is_still_capped() -> None:
    with pytest.raises(SieveSyntaxError):
        compile_script("if true {" * 5000 + "}" * 5000, limits=Limits(max_nesting=1_000_000))


def test_script_size_limit() -> None:
    with pytest.raises(SieveLimitError):
        compile_script("keep;" * 100, limits=Limits(max_script_size=50))


def test_bytes_input_and_bad_utf8() -> None:
    compile_script(b"keep;")
    with pytest.raises(SieveSyntaxError) as ei:
        compile_script(b'keep;\n"\xff";')
    assert (ei.value.line, ei.value.column) == (2, 2)


def test_extensions_restrict_require() -> None:
    compile_script('require "fileinto"; fileinto "a";')
    with pytest.raises(SieveSyntaxError):
        compile_script('require "fileinto"; fileinto "a";', extensions=frozenset({"envelope"}))


def test_tree_has_positions_on_every_node() -> None:
    nodes = parse('if anyof (true,\n  header "a" "b") {\n keep; }')
    stack = list(nodes)
    seen = 0
    while stack:
        n = stack.pop()
        assert n.line >= 1 and n.column >= 1
        seen += 1
        for a in n.args:
            assert a.line >= 1 and a.column >= 1
        stack += n.tests + (n.block or [])
    assert seen == 5


def test_comparator_requires_its_extension() -> None:
    with pytest.raises(SieveSyntaxError, match="comparator-i;ascii-numeric"):
        compile_script('if header :comparator "i;ascii-numeric" "x" "1" { keep; }')
    compile_script('require "comparator-i;octet"; if header :comparator "i;octet" "x" "1" { keep; }')


def test_ascii_numeric_refuses_substring_match() -> None:
    with pytest.raises(SieveSyntaxError, match="cannot be used with :contains"):
        compile_script('require "comparator-i;ascii-numeric";'
                       'if header :contains :comparator "i;ascii-numeric" "x" "1" { keep; }')
