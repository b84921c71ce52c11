"""RFC 3977 §4 wildmats: a table of cases, and properties checked with Hypothesis."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.news.wildmat import WildmatError, compile_wildmat

CASES = [
    ("*", "comp.lang.python", True),
    ("comp.*", "comp.lang.python", True),
    ("comp.*", "alt.comp", False),
    ("comp.*,!comp.lang.*", "comp.lang.python", False),
    ("comp.*,!comp.lang.*", "comp.os.linux", True),
    ("comp.*,!comp.lang.*,comp.lang.python", "comp.lang.python", True),  # the last match decides
    ("!comp.*", "comp.x", False),
    ("!comp.*", "alt.x", False),  # nothing matched positively
    ("?", "a", True),
    ("?", "ab", False),
    ("a?c", "abc", True),
    ("a?c", "a.c", True),
    ("é*", "école", True),  # UTF-8: ? and * work on characters
    ("?cole", "école", True),
    ("local.test", "local.test", True),
    ("local.test", "local.testing", False),
    ("a+b", "a+b", True),  # regular-expression characters are plain
    ("a.b", "axb", False),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), CASES)
def test_table(pattern: str, name: str, expected: bool) -> None:
    assert compile_wildmat(pattern)(name) is expected


@pytest.mark.parametrize("bad", ["", ",", "a,,b", "!", "a[b]", "a\\b", "a b", "a!b", "x,!"])
def test_malformed(bad: str) -> None:
    with pytest.raises(WildmatError):
        compile_wildmat(bad)


# Pattern characters allowed by RFC 3977 §4.1 (wildmat-exact plus * and ?), a small alphabet
# so that matches happen often.
_chars = st.sampled_from(list("ab.c-") + ["*", "?"])
_patterns = st.text(_chars, min_size=1, max_size=8)
_names = st.text(st.sampled_from(list("ab.c-")), min_size=0, max_size=10)


@given(_patterns, _names)
def test_single_pattern_is_glob(pattern: str, name: str) -> None:
    # One pattern without brackets means what fnmatch means (its [ ] are not allowed here).
    assert compile_wildmat(pattern)(name) is fnmatch.fnmatchcase(name, pattern)


@given(st.lists(st.tuples(st.booleans(), _patterns), min_size=1, max_size=5), _names)
def test_last_match_decides(items: list[tuple[bool, str]], name: str) -> None:
    wildmat = ",".join(("!" if neg else "") + p for neg, p in items)
    expected = False
    for neg, p in items:
        if fnmatch.fnmatchcase(name, p):
            expected = not neg
    assert compile_wildmat(wildmat)(name) is expected


@given(_patterns, _names)
def test_negation_alone_never_matches(pattern: str, name: str) -> None:
    assert compile_wildmat("!" + pattern)(name) is False


@given(_patterns, _names)
def test_star_then_negation_is_complement(pattern: str, name: str) -> None:
    assert compile_wildmat("*,!" + pattern)(name) is (not compile_wildmat(pattern)(name))
