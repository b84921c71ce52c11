"""A small milter for the tests, built on purepythonmilter (an independent implementation of
the protocol's milter side), run as a child process on a loopback port:

    python tests/miltertest.py PORT

What it does, keyed on markers in the Subject field:

* every message gets ``X-Miltertest: checked``, ``X-Miltertest-Auth: <{auth_authen} or none>``
  and ``X-Miltertest-Daemon: <{daemon_name}>`` appended;
* ``REJECT-ME``: 550 5.7.1 at the header stage; ``TEMPFAIL-ME``: 451 4.7.1 at end of message;
* ``CHANGE-SUBJECT``: the Subject becomes "changed by miltertest";
* ``NEW-BODY``: the body becomes "replaced by miltertest";
* ``ADD-RCPT <addr>`` / ``DEL-RCPT <addr>``: envelope recipients added / removed;
* ``DISCARD-ME``: discarded;
* a recipient ``blocked@…`` is refused (550 5.7.1) at RCPT.
"""

from __future__ import annotations

import logging
import re
import sys

from purepythonmilter import (
    AddRecipient,
    AppendHeader,
    ChangeHeader,
    Connect,
    Continue,
    DiscardMessage,
    EndOfMessage,
    Header,
    MailFrom,
    PurePythonMilter,
    RcptTo,
    RejectWithCode,
    RemoveRecipient,
    TempFailWithCode,
)
from purepythonmilter.api.models import connection_id_context
from purepythonmilter.protocol.responses import (
    AbstractResponse,
    ReplaceBodyChunk,
    VerdictOrContinue,
)

_state: dict[object, dict[str, str]] = {}


def _mine() -> dict[str, str]:
    return _state.setdefault(connection_id_context.get(), {})


async def on_connect(cmd: Connect) -> None:
    _mine()["daemon"] = cmd.macros.get("{daemon_name}", "") or "none"


async def on_mail_from(cmd: MailFrom) -> None:
    st = _mine()
    st.pop("subject", None)
    st["auth"] = cmd.macros.get("{auth_authen}", "") or "none"


async def on_rcpt_to(cmd: RcptTo) -> VerdictOrContinue:
    if cmd.address.lower().startswith("blocked@"):
        return RejectWithCode(primary_code=(5, 5, 0), enhanced_code=(5, 7, 1), text="recipient blocked by miltertest")
    return Continue()


async def on_header(cmd: Header) -> VerdictOrContinue:
    if cmd.name.lower() == "subject":
        _mine()["subject"] = cmd.text
        if "REJECT-ME" in cmd.text:
            return RejectWithCode(primary_code=(5, 5, 0), enhanced_code=(5, 7, 1),
                                  text="rejected by miltertest: marker found")
    return Continue()


async def on_end_of_message(cmd: EndOfMessage) -> AbstractResponse:
    st = _mine()
    subject = st.get("subject", "")
    if "TEMPFAIL-ME" in subject:
        return TempFailWithCode(primary_code=(4, 5, 1), enhanced_code=(4, 7, 1), text="miltertest is busy")
    if "DISCARD-ME" in subject:
        return DiscardMessage()
    mods: list = [AppendHeader(headername="X-Miltertest", headertext="checked"),
                  AppendHeader(headername="X-Miltertest-Auth", headertext=st.get("auth", "none")),
                  AppendHeader(headername="X-Miltertest-Daemon", headertext=st.get("daemon", "none"))]
    if "CHANGE-SUBJECT" in subject:
        mods.append(ChangeHeader(headername="Subject", headertext="changed by miltertest", nth_occurrence=1))
    if "NEW-BODY" in subject:
        mods.append(ReplaceBodyChunk(chunk=b"replaced by miltertest\r\n"))
    for m in re.finditer(r"ADD-RCPT (\S+)", subject):
        mods.append(AddRecipient(recipient=f"<{m.group(1)}>"))
    for m in re.finditer(r"DEL-RCPT (\S+)", subject):
        mods.append(RemoveRecipient(recipient=f"<{m.group(1)}>"))
    return Continue(manipulations=mods)


milter = PurePythonMilter(
    name="miltertest",
    hook_on_connect=on_connect,
    hook_on_mail_from=on_mail_from,
    hook_on_rcpt_to=on_rcpt_to,
    hook_on_header=on_header,
    hook_on_end_of_message=on_end_of_message,
    restrict_symbols=None,  # every macro the MTA sends by default
    can_add_headers=True,
    can_change_headers=True,
    can_change_body=True,
    can_add_recipients=True,
    can_remove_recipients=True,
)

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    milter.run_server(host="127.0.0.1", port=int(sys.argv[1]))
