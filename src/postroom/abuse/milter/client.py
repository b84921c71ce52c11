"""One milter conversation over a socket: the asyncio side of :mod:`.proto`.

Every wait has its timeout (Postfix's milter_connect/command/content_timeout); a
PROGRESS from the milter restarts it. Whatever goes wrong — refused connection, reset,
timeout, a packet that breaks the protocol — is one :class:`MilterUnavailable`, so that
the caller applies the milter's default action in one place.
"""

from __future__ import annotations

import asyncio

from . import proto
from .proto import Cmd, Decision, MilterProtocolError, Modification, Verdict
from .settings import MilterSpec


class MilterUnavailable(Exception):
    """The milter cannot be asked (down, slow or broken); the message says why."""


class MilterConnection:
    __slots__ = ("_decoder", "negotiated", "reader", "spec", "writer")

    def __init__(self, spec: MilterSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 negotiated: proto.Negotiated) -> None:
        self.spec = spec
        self.reader = reader
        self.writer = writer
        self.negotiated = negotiated
        self._decoder = proto.Decoder()

    @classmethod
    async def open(cls, spec: MilterSpec) -> MilterConnection:
        """Connect and negotiate options (both under connect_timeout)."""
        try:
            async with asyncio.timeout(spec.connect_timeout):
                if spec.unix_path is not None:
                    reader, writer = await asyncio.open_unix_connection(spec.unix_path)
                else:
                    reader, writer = await asyncio.open_connection(spec.host, spec.port)
        except TimeoutError:
            raise MilterUnavailable(f"connect timed out after {spec.connect_timeout:g}s") from None
        except OSError as exc:
            raise MilterUnavailable(f"connect failed: {exc.strerror or exc}") from None
        conn = cls(spec, reader, writer, proto.Negotiated(proto.VERSION, proto.Action(0), proto.Proto(0)))
        try:
            writer.write(proto.optneg())
            cmd, payload = await conn._packet(spec.connect_timeout)
            if cmd != proto.Rsp.OPTNEG.value:
                raise MilterUnavailable(f"option negotiation answered with {cmd!r}")
            conn.negotiated = proto.parse_optneg(payload)
        except MilterProtocolError as exc:
            conn.abort()
            raise MilterUnavailable(f"protocol error: {exc}") from None
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _packet(self, timeout: float) -> tuple[bytes, bytes]:
        try:
            async with asyncio.timeout(timeout):
                await self.writer.drain()
                while (p := self._decoder.next()) is None:
                    data = await self.reader.read(65536)
                    if not data:
                        raise MilterUnavailable("connection closed by the milter")
                    self._decoder.feed(data)
                return p
        except TimeoutError:
            raise MilterUnavailable(f"no reply within {timeout:g}s") from None
        except OSError as exc:
            raise MilterUnavailable(f"connection lost: {exc.strerror or exc}") from None
        except MilterProtocolError as exc:
            raise MilterUnavailable(f"protocol error: {exc}") from None

    async def _response(self, timeout: float) -> Decision | Modification:
        """The next response other than PROGRESS, which restarts the timeout."""
        while True:
            cmd, payload = await self._packet(timeout)
            try:
                rsp = proto.parse_response(cmd, payload)
            except MilterProtocolError as exc:
                raise MilterUnavailable(f"protocol error: {exc}") from None
            if not isinstance(rsp, proto.Progress):
                return rsp

    def send(self, *packets: bytes) -> None:
        self.writer.write(b"".join(packets))

    async def ask(self, cmd: Cmd, packet: bytes, timeout: float, macros: bytes = b"") -> Decision | None:
        """Send one command (after its macros); its verdict, or None if the milter skips the
        step or sends no reply to it."""
        if self.negotiated.skips(cmd):
            return None
        self.send(macros, packet)
        if not self.negotiated.replies(cmd):
            try:
                async with asyncio.timeout(timeout):
                    await self.writer.drain()
            except TimeoutError:
                raise MilterUnavailable(f"could not send within {timeout:g}s") from None
            except OSError as exc:
                raise MilterUnavailable(f"connection lost: {exc.strerror or exc}") from None
            return None
        rsp = await self._response(timeout)
        if not isinstance(rsp, Decision):
            raise MilterUnavailable(f"modification {type(rsp).__name__} before the end of the message")
        if rsp.verdict is Verdict.SKIP and cmd is not Cmd.BODY:
            raise MilterUnavailable("SKIP outside the body")
        return rsp

    async def end_of_message(self, timeout: float, macros: bytes = b"") -> tuple[list[Modification], Decision]:
        """BODYEOB: the modifications the milter asks for, then its verdict."""
        self.send(macros, proto.simple(Cmd.BODYEOB))
        mods: list[Modification] = []
        allowed = self.negotiated.actions
        while True:
            rsp = await self._response(timeout)
            if isinstance(rsp, Decision):
                if rsp.verdict is Verdict.SKIP:
                    raise MilterUnavailable("SKIP at the end of the message")
                return mods, rsp
            need = proto.NEEDS[type(rsp)]
            if isinstance(rsp, proto.AddRcpt) and rsp.args:
                need = proto.Action.ADDRCPT_PAR
            if not allowed & need:
                raise MilterUnavailable(f"{type(rsp).__name__} without negotiating {need.name}")
            mods.append(rsp)

    async def quit(self) -> None:
        """QUIT and close (best effort: the milter may be gone already)."""
        try:
            self.writer.write(proto.simple(Cmd.QUIT))
            async with asyncio.timeout(1.0):
                await self.writer.drain()
        except (OSError, TimeoutError):
            pass
        self.abort()

    def abort(self) -> None:
        self.writer.close()
