"""A loopback SMTP server (aiosmtpd) that records mail and answers RCPT/DATA as scripted.

    with FakeSMTP() as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            client.send_message(msg)
        smtp.messages[0].message["Subject"]

Replies are `SmtpReply` values. For each RCPT the fake takes the next one from `script_rcpt(...)`
(FIFO), else `rcpt_responder(address)`, else a per-address rule (`set_rcpt_reply`), else accept;
for each DATA the same with `script_data(...)` / `data_responder(envelope)` / accept.
Kinds: accept (250), reply (any code, e.g. 550 permanent, 451 temporary), drop (close the
connection without replying), and for DATA accept_then_drop: the message IS recorded as
accepted, then the connection closes before the 250 reaches the client, the ambiguous case
(smtplib raises SMTPServerDisconnected). `delay_ms` delays any reply (client timeouts).

AUTH: pass `auth={"user": "password"}` to advertise AUTH PLAIN/LOGIN over plain TCP
(aiosmtpd's auth_require_tls is switched off; `auth_required=True` refuses MAIL before AUTH).
STARTTLS/SMTPS are not supported. SMTPUTF8 and 8BITMIME are advertised.

Line endings: RFC 5321 requires CRLF. ``smtplib.SMTP.data(bytes)`` sends bytes as they are, so
``data(msg.as_bytes())`` puts bare LFs on the wire (``send_message`` or
``as_bytes(policy=email.policy.SMTP)`` do not). Since the 2023 "SMTP smuggling" fixes some servers
refuse bare LF, others normalise it; aiosmtpd itself answers "500 Line too long" once such a
message passes 1,000 bytes. So that the mistake shows up at any size, the fake refuses DATA with
a bare LF (550 5.6.0, recorded in `rejected`); ``reject_bare_lf=False`` accepts it.

Caveats: one server thread; `messages` holds accepted mail only (refused DATA goes to
`rejected`); the listening socket is bound before the controller starts (port 0 = free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.peers._threaded import bind_loopback

_BARE_LF = re.compile(rb"(?<!\r)\n")

ReplyKind = Literal["accept", "reply", "drop", "accept_then_drop"]


@dataclass(frozen=True)
class SmtpReply:
    """How the fake answers one RCPT or DATA. Build with the classmethods."""

    kind: ReplyKind = "accept"
    code: int = 250
    text: str = "OK"
    delay_ms: float = 0

    @classmethod
    def accept(cls, *, delay_ms: float = 0) -> SmtpReply:
        """250: recipient accepted / message accepted for delivery."""
        return cls("accept", delay_ms=delay_ms)

    @classmethod
    def reject(cls, code: int = 550, text: str = "5.1.1 Mailbox unavailable", *, delay_ms: float = 0) -> SmtpReply:
        """A permanent (5xx) refusal."""
        return cls("reply", code, text, delay_ms)

    @classmethod
    def temporary(
        cls, code: int = 451, text: str = "4.3.0 Temporary failure, try again later", *, delay_ms: float = 0
    ) -> SmtpReply:
        """A temporary (4xx) refusal."""
        return cls("reply", code, text, delay_ms)

    @classmethod
    def drop(cls, *, delay_ms: float = 0) -> SmtpReply:
        """Close the connection without replying (nothing recorded)."""
        return cls("drop", 0, "", delay_ms)

    @classmethod
    def accept_then_drop(cls, *, delay_ms: float = 0) -> SmtpReply:
        """DATA only: record the message as accepted, then close without replying (ambiguous)."""
        return cls("accept_then_drop", 0, "", delay_ms)

    @property
    def line(self) -> str:
        """The SMTP reply line."""
        return f"{self.code} {self.text}"


@dataclass
class ReceivedMail:
    """One message the fake accepted (or refused at DATA, in `rejected`)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage  # parsed with email.policy.default
    received_wall: float
    received_monotonic: float
    reply: SmtpReply
    peer: Any = None
    login: str | None = None  # AUTH user, if the session authenticated
    mail_options: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str | None:
        """The decoded Subject header."""
        value = self.message["Subject"]
        return None if value is None else str(value)

    def text_body(self) -> str | None:
        """The text/plain part (decoded, CRLF from the wire turned into \\n), if any."""
        part = self.message.get_body(preferencelist=("plain",))
        return None if part is None else part.get_content().replace("\r\n", "\n")


BARE_LF_REPLY = SmtpReply("reply", 550, "5.6.0 Bare LF line ending in message data (RFC 5321 section 2.3.8)")


class _Handler:
    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def _apply(self, server: SMTP, reply: SmtpReply) -> str | None:
        if reply.delay_ms:
            await asyncio.sleep(reply.delay_ms / 1000)
        if reply.kind in {"drop", "accept_then_drop"}:
            if server.transport is not None:
                server.transport.abort()
            return "421 4.3.0 closing"  # never reaches the client: the transport is gone
        return None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.fake._next_rcpt(address)
        with self.fake._lock:
            self.fake.rcpt_log.append((address, reply))
        dropped = await self._apply(server, reply)
        if dropped is not None:
            return dropped
        if reply.kind == "accept":
            envelope.rcpt_tos.append(address)
            return "250 OK"
        return reply.line

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes) else b"")
        if self.fake.reject_bare_lf and _BARE_LF.search(raw):
            reply = BARE_LF_REPLY
        else:
            reply = self.fake._next_data(envelope)
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=email.message_from_bytes(raw, policy=email.policy.default),  # type: ignore[arg-type]
            received_wall=time.time(),
            received_monotonic=time.monotonic(),
            reply=reply,
            peer=session.peer,
            login=session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            mail_options=list(envelope.mail_options),
        )
        accepted = reply.kind in {"accept", "accept_then_drop"}
        with self.fake._lock:
            (self.fake._messages if accepted else self.fake._rejected).append(mail)
        dropped = await self._apply(server, reply)
        if dropped is not None:
            return dropped
        if reply.kind == "accept":
            return "250 2.0.0 Message accepted for delivery"
        return reply.line


class _SocketController(Controller):
    """aiosmtpd Controller serving on a socket bound beforehand (so port 0 works)."""

    def __init__(self, handler: Any, sock: Any, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class FakeSMTP:
    """SMTP server on 127.0.0.1 in a background thread that records and scripts replies."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: Mapping[str, str] | None = None,
        auth_required: bool = False,
        hostname: str = "fake-smtp.local",
        reject_bare_lf: bool = True,
    ) -> None:
        self.host = host
        self.reject_bare_lf = reject_bare_lf
        self._sock = bind_loopback(host, port, backlog=128)
        self.port: int = self._sock.getsockname()[1]
        self._auth = dict(auth or {})
        self._lock = threading.RLock()
        self._messages: list[ReceivedMail] = []
        self._rejected: list[ReceivedMail] = []
        self.rcpt_log: list[tuple[str, SmtpReply]] = []
        self._rcpt_queue: deque[SmtpReply] = deque()
        self._data_queue: deque[SmtpReply] = deque()
        self._rcpt_rules: dict[str, SmtpReply] = {}
        self.rcpt_responder: Callable[[str], SmtpReply | None] | None = None
        self.data_responder: Callable[[Envelope], SmtpReply | None] | None = None
        self.auth_attempts: list[tuple[str, bool]] = []
        kwargs: dict[str, Any] = {"server_hostname": hostname, "enable_SMTPUTF8": True, "ready_timeout": 10.0}
        if self._auth:
            # aiosmtpd warns on every connection when AUTH is offered without TLS; loopback means to
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning)
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False, auth_required=auth_required)
        self._controller = _SocketController(_Handler(self), self._sock, **kwargs)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeSMTP:
        """Start serving (returns self once the greeting is served)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop the server thread and free the port."""
        with contextlib.suppress(AssertionError):
            self._controller.stop()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ----------------------------------------------------------------------------
    def script_rcpt(self, *replies: SmtpReply) -> None:
        """Replies for the next RCPT commands, in order."""
        with self._lock:
            self._rcpt_queue.extend(replies)

    def script_data(self, *replies: SmtpReply) -> None:
        """Replies for the next DATA commands, in order."""
        with self._lock:
            self._data_queue.extend(replies)

    def set_rcpt_reply(self, address: str, reply: SmtpReply | None) -> None:
        """Every RCPT TO `address` (case-insensitive) gets `reply`; None removes the rule."""
        with self._lock:
            if reply is None:
                self._rcpt_rules.pop(address.lower(), None)
            else:
                self._rcpt_rules[address.lower()] = reply

    def reset(self) -> None:
        """Forget mail, logs, scripts, rules and responders."""
        with self._lock:
            self._messages.clear()
            self._rejected.clear()
            self.rcpt_log.clear()
            self._rcpt_queue.clear()
            self._data_queue.clear()
            self._rcpt_rules.clear()
            self.auth_attempts.clear()
        self.rcpt_responder = None
        self.data_responder = None

    def _next_rcpt(self, address: str) -> SmtpReply:
        with self._lock:
            if self._rcpt_queue:
                return self._rcpt_queue.popleft()
        if self.rcpt_responder is not None:
            reply = self.rcpt_responder(address)
            if reply is not None:
                return reply
        with self._lock:
            return self._rcpt_rules.get(address.lower(), SmtpReply.accept())

    def _next_data(self, envelope: Envelope) -> SmtpReply:
        with self._lock:
            if self._data_queue:
                return self._data_queue.popleft()
        if self.data_responder is not None:
            reply = self.data_responder(envelope)
            if reply is not None:
                return reply
        return SmtpReply.accept()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        ok = self._auth.get(user) == auth_data.password.decode("utf-8", "replace")
        with self._lock:
            self.auth_attempts.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # -- inspection ---------------------------------------------------------------------------
    @property
    def messages(self) -> list[ReceivedMail]:
        """Accepted mail (including accept_then_drop), oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def rejected(self) -> list[ReceivedMail]:
        """Mail whose DATA was refused with a 4xx/5xx (or dropped before acceptance)."""
        with self._lock:
            return list(self._rejected)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` messages were accepted (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} messages arrived within {timeout}s")
            time.sleep(0.005)
