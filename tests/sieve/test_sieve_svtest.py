"""Runs every ``tests/sieve/svtest/*.svtest`` file through the ``vnd.dovecot.testsuite``
runner (``postroom.sieve.testsuite``): one pytest case per file, failing with the
names and reasons of the tests in it that failed.

A file for an extension the engine does not have yet (absent from
``SUPPORTED_EXTENSIONS``) is an expected failure naming that extension; once the
extension is there, the file must pass.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from postroom.sieve import SUPPORTED_EXTENSIONS
from postroom.sieve.testsuite import run_file, run_suite

SVTEST = Path(__file__).parent / "svtest"
FILES = sorted(SVTEST.glob("*.svtest"))

#: The capability each file is about (the file name unless listed); "core" is RFC 5228.
CAPABILITY = {"core": None, "ascii-numeric": "comparator-i;ascii-numeric"}
_REQUIRE = re.compile(r'^\s*require\s+(\[[^\]]*\]|"[^"]*")\s*;', re.MULTILINE)


def _required(path: Path) -> set[str]:
    caps: set[str] = set()
    for m in _REQUIRE.finditer(path.read_text("utf-8")):
        caps.update(re.findall(r'"([^"]*)"', m.group(1)))
    return caps - {"vnd.dovecot.testsuite"}


def test_every_supported_extension_has_a_file() -> None:
    covered = {CAPABILITY.get(p.stem, p.stem) for p in FILES}
    # Capabilities that only enable others' parts are covered by the file that uses them.
    implied = {"ereject": "reject", "vacation-seconds": "vacation", "spamtestplus": "spamtest",
               "servermetadata": "mboxmetadata", "envelope": "envelope"}
    missing = [c for c in SUPPORTED_EXTENSIONS if c not in covered and implied.get(c) not in covered]
    assert not missing, f"no .svtest file for {missing}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_svtest_file(path: Path) -> None:
    absent = sorted(c for c in _required(path) if c not in SUPPORTED_EXTENSIONS)
    out = io.StringIO()
    report = run_file(path, out=out)
    if absent:
        if report.passed:
            pytest.fail(f"{path.name} passes although {absent} are not in SUPPORTED_EXTENSIONS")
        pytest.xfail(f"extension(s) {', '.join(absent)} not implemented yet (not in SUPPORTED_EXTENSIONS)")
    failed = [f"{o.name}: {o.reason}" for o in report.outcomes if not o.passed]
    assert not report.error, report.error + "\n" + out.getvalue()
    assert report.outcomes, f"{path.name} has no tests"
    assert not failed, "\n".join(failed)


# -- the runner itself ------------------------------------------------------------------

_SUITE = b'''require "vnd.dovecot.testsuite";
test_set "message" text:
Subject: hello

x
.
;
test "passes" {
    if not header :is "subject" "hello" { test_fail "subject"; }
}
test "fails" {
    if header :is "subject" "hello" { test_fail "expected failure"; }
}
test "runtime error" {
    test_message :smtp 0;
}
'''


def test_runner_reports_each_test(tmp_path: Path) -> None:
    out = io.StringIO()
    report = run_suite(_SUITE, tmp_path, out=out)
    assert [(o.name, o.passed) for o in report.outcomes] == [
        ("passes", True), ("fails", False), ("runtime error", False)]
    assert report.outcomes[1].reason == "expected failure"
    assert "no message 0 was sent" in report.outcomes[2].reason
    assert not report.passed
    assert out.getvalue().splitlines()[:2] == ["passes: PASS", "fails: FAIL: expected failure"]


@pytest.mark.parametrize("text, why", [
    (b'test "x" { }', 'needs require "vnd.dovecot.testsuite"'),
    (b'keep;', 'must require "vnd.dovecot.testsuite"'),
    (b'require "vnd.dovecot.testsuite";\ntest_set "nonsense" "x";', "unknown item"),
    (b'require "vnd.dovecot.testsuite";\ntest "x" { test_fail; }', "line 2"),
    (b'require "vnd.dovecot.testsuite";\n', "no tests"),
    (b'require "vnd.dovecot.testsuite";\ntest_fail "outside";', "outside a test"),
    (b'\xff', "UTF-8"),
])
def test_runner_refuses_bad_files(tmp_path: Path, text: bytes, why: str) -> None:
    report = run_suite(text, tmp_path, out=io.StringIO())
    assert not report.passed
    assert why in report.error


def test_testsuite_extension_is_not_for_stored_scripts() -> None:
    from postroom.sieve import SieveSyntaxError, compile_script

    assert "vnd.dovecot.testsuite" not in SUPPORTED_EXTENSIONS
    with pytest.raises(SieveSyntaxError, match="unsupported extension"):
        compile_script('require "vnd.dovecot.testsuite";')


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.svtest"
    good.write_text('require "vnd.dovecot.testsuite";\ntest "t" { if false { test_fail "no"; } }\n')
    bad = tmp_path / "bad.svtest"
    bad.write_text('require "vnd.dovecot.testsuite";\ntest "t" { test_fail "always"; }\n')
    cmd = [sys.executable, "-m", "postroom.cli", "sieve", "testsuite"]
    ok = subprocess.run([*cmd, str(good)], capture_output=True, text=True, check=False, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "t: PASS" in ok.stdout and "PASS (1/1 tests passed)" in ok.stdout
    ko = subprocess.run([*cmd, str(good), str(bad)], capture_output=True, text=True, check=False, timeout=60)
    assert ko.returncode == 1
    assert "t: FAIL: always" in ko.stdout
    missing = subprocess.run([*cmd, str(tmp_path / "none.svtest")], capture_output=True, text=True, check=False, timeout=60)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
