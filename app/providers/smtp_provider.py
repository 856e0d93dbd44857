"""E-mail over SMTP: plain text plus an HTML alternative (right-to-left for Arabic), List-Unsubscribe.

SMTP has no idempotency either: a connection lost after DATA leaves us not knowing whether the
server took the mail, so that case is ambiguous; a refusal before DATA completes is not.
"""

from __future__ import annotations

import datetime as dt
import html
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate, parseaddr

from app.providers.base import (
    Accepted,
    AmbiguousOutcome,
    LookupResult,
    NotProcessed,
    OutgoingMessage,
    PermanentFailure,
)
from db.enums import Language, MessageStatus


def build_email(message: OutgoingMessage, *, sender: str) -> EmailMessage:
    """The MIME message: text/plain and text/html alternatives, RTL for Arabic."""
    email = EmailMessage()
    domain = parseaddr(sender)[1].partition("@")[2] or "localhost"
    email["Message-ID"] = f"<{message.message_id.hex}@{domain}>"
    # the clinic's sender name (Settings) on the server's address; the server's own name without one
    email["From"] = formataddr((message.sender_name, parseaddr(sender)[1])) if message.sender_name else sender
    email["To"] = message.recipient
    email["Subject"] = message.subject or "(no subject)"
    email["Date"] = formatdate(localtime=False)
    # Always offer a way out: a reply to the clinic's address (staff record the opt-out), and a
    # one-click https link when one is configured.
    targets = [f"<mailto:{parseaddr(sender)[1]}?subject=unsubscribe>"]
    if message.unsubscribe_url:
        targets.insert(0, f"<{message.unsubscribe_url}>")
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email["List-Unsubscribe"] = ", ".join(targets)
    email.set_content(message.body)
    email.add_alternative(email_html(message.body, message.language, message.subject), subtype="html")
    email["Content-Language"] = message.language.value
    return email


def email_html(body: str, language: Language, subject: str = "") -> str:
    """Escaped HTML for a message body; Arabic is laid out right-to-left."""
    rtl = language == Language.AR
    direction = "rtl" if rtl else "ltr"
    align = "right" if rtl else "left"
    paragraphs = "".join(
        f"<p style=\"margin:0 0 12px 0\">{html.escape(p).replace(chr(10), '<br>')}</p>"
        for p in body.split("\n\n")
    )
    return (
        f'<!DOCTYPE html><html lang="{language.value}" dir="{direction}"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>"
        f'<body dir="{direction}" style="font-family:Arial,Tahoma,sans-serif;text-align:{align};'
        f'line-height:1.5;color:#1f2933">{paragraphs}</body></html>'
    )


class SmtpProvider:
    name = "smtp"

    def __init__(self, *, host: str, port: int = 587, username: str | None = None, password: str | None = None,
                 sender: str, starttls: bool = True, timeout_seconds: float = 30.0) -> None:
        self._host, self._port = host, port
        self._username, self._password = username, password
        self.sender = sender
        self._starttls = starttls
        self._timeout = timeout_seconds

    def send(self, message: OutgoingMessage) -> Accepted:
        email = build_email(message, sender=self.sender)
        envelope_from = parseaddr(self.sender)[1]
        try:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotProcessed(f"The mail server could not be reached ({type(exc).__name__}).",
                               code="connection", provider=self.name) from None
        try:
            self._prepare(smtp)
            self._envelope(smtp, envelope_from, message.recipient)
            self._data(smtp, email)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
        return Accepted(provider_message_id=str(email["Message-ID"]).strip("<>"), status=MessageStatus.SENT,
                        segments=0, sender=envelope_from)

    def _prepare(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.ehlo()
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self._username:
                smtp.login(self._username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentFailure(f"The mail server refused our login ({exc.smtp_code}).",
                                   code=str(exc.smtp_code), provider=self.name, configuration=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotProcessed(f"The mail server did not accept the session ({type(exc).__name__}).",
                               code="connection", provider=self.name) from None

    def _envelope(self, smtp: smtplib.SMTP, sender: str, recipient: str) -> None:
        try:
            code, reply = smtp.mail(sender)
            if code >= 400:
                raise _refusal(code, reply, self.name)
            code, reply = smtp.rcpt(recipient)
            if code >= 400:
                raise _refusal(code, reply, self.name)
        except (PermanentFailure, NotProcessed):
            raise
        except (OSError, smtplib.SMTPException) as exc:
            raise NotProcessed(f"The mail server dropped the connection before the message ({type(exc).__name__}).",
                               code="connection", provider=self.name) from None

    def _data(self, smtp: smtplib.SMTP, email: EmailMessage) -> None:
        try:
            code, reply = smtp.data(email.as_bytes(policy=SMTP_POLICY))  # CRLF line ends
        except smtplib.SMTPDataError as exc:
            raise _refusal(exc.smtp_code, exc.smtp_error, self.name) from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise AmbiguousOutcome(
                f"The mail server did not confirm the message ({type(exc).__name__}); it may have been delivered.",
                code="timeout", provider=self.name,
            ) from None
        if code >= 400:
            raise _refusal(code, reply, self.name)

    def lookup(self, message: OutgoingMessage, *, provider_message_id: str | None,
               sent_after: dt.datetime, taken: Callable[[str], bool] | None = None) -> LookupResult | None:
        return None  # SMTP offers no way to ask whether a message was accepted


def _refusal(code: int, reply: bytes | str, provider: str) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    if 400 <= code < 500:
        return NotProcessed(f"The mail server asked to try later: {code} {text}", code=str(code),
                            provider=provider, retry_after=60.0)
    return PermanentFailure(f"The mail server refused the message: {code} {text}", code=str(code),
                            provider=provider)
