"""Provider error codes: what they mean to a clerk, what to do, and how delivery must treat them."""

from __future__ import annotations

from dataclasses import dataclass

from db.types import StrEnum


class FailureKind(StrEnum):
    PERMANENT = "permanent"  # do not retry this message as it is
    OPT_OUT = "opt_out"  # permanent, and the recipient must be recorded as opted out
    NOT_PROCESSED = "not_processed"  # the provider did not take it: safe to retry with backoff
    AMBIGUOUS = "ambiguous"  # the provider may have it: settle by lookup, never resend blindly
    CONFIGURATION = "configuration"  # our account or sender is wrong: fix settings (may fail over)
    TEMPORARY = "temporary"  # delivery-time failure that may clear on a later attempt


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    kind: FailureKind
    title: str
    action: str


_CATALOG = [
    ErrorInfo("20003", FailureKind.CONFIGURATION, "The provider refused our credentials.",
              "An admin must check the Twilio account SID and auth token."),
    ErrorInfo("20429", FailureKind.NOT_PROCESSED, "The provider was busy and did not take the message.",
              "Nothing to do: it is retried automatically."),
    ErrorInfo("20500", FailureKind.AMBIGUOUS, "The provider had an internal error; it may or may not have the message.",
              "Nothing to do yet: the message is checked with the provider before anything is resent."),
    ErrorInfo("21211", FailureKind.PERMANENT, "The number is not a valid mobile number.",
              "Correct the phone number on the patient record, then retry."),
    ErrorInfo("21408", FailureKind.CONFIGURATION, "Sending to this country is not enabled on our account.",
              "An admin must enable the region in the provider's console or route it another way."),
    ErrorInfo("21610", FailureKind.OPT_OUT, "The patient replied STOP to our messages.",
              "Do not resend. The patient can reply START to receive messages again."),
    ErrorInfo("21611", FailureKind.NOT_PROCESSED, "Our sender's queue at the provider is full.",
              "Nothing to do: sending slows down and retries later."),
    ErrorInfo("21612", FailureKind.PERMANENT, "The provider cannot route a message to this number.",
              "Check the number, or use another channel (e.g. email)."),
    ErrorInfo("21614", FailureKind.PERMANENT, "The number is not a mobile number.",
              "Ask the patient for a mobile number and update the patient record."),
    ErrorInfo("21635", FailureKind.PERMANENT, "The number is a landline and cannot receive SMS.",
              "Ask the patient for a mobile number and update the patient record."),
    ErrorInfo("21617", FailureKind.PERMANENT, "The message is longer than the provider allows.",
              "Shorten the message (1,600 characters at most)."),
    ErrorInfo("63016", FailureKind.PERMANENT,
              "WhatsApp: more than 24 hours since the patient last wrote, so free text is not allowed.",
              "Send an approved WhatsApp template instead, or use SMS."),
    ErrorInfo("63014", FailureKind.OPT_OUT, "WhatsApp: the patient blocked our messages.",
              "Do not resend on WhatsApp; use another channel if the patient agrees."),
    ErrorInfo("63003", FailureKind.PERMANENT, "WhatsApp: the number is not on WhatsApp.",
              "Send by SMS instead."),
    ErrorInfo("30001", FailureKind.TEMPORARY, "The provider's queue overflowed.",
              "Retry later."),
    ErrorInfo("30003", FailureKind.TEMPORARY, "The patient's phone was unreachable (off or out of coverage).",
              "Retry later, or call the patient."),
    ErrorInfo("30005", FailureKind.PERMANENT, "The number is unknown or no longer in service.",
              "Confirm the number with the patient and update the record."),
    ErrorInfo("30006", FailureKind.PERMANENT, "The number is a landline or the carrier cannot deliver to it.",
              "Ask the patient for a mobile number."),
    ErrorInfo("30007", FailureKind.PERMANENT, "The carrier filtered the message as spam.",
              "Review the wording (links, repeated content) before retrying."),
    ErrorInfo("30008", FailureKind.TEMPORARY, "The carrier reported an unknown error.",
              "Retry once; if it fails again, call the patient."),
    ErrorInfo("30034", FailureKind.CONFIGURATION, "Our sender is not registered for this traffic.",
              "An admin must complete the sender registration with the provider."),
    ErrorInfo("30036", FailureKind.TEMPORARY, "The message expired before it could be delivered.",
              "Retry if it is still relevant."),
    ErrorInfo("smtp-5xx", FailureKind.PERMANENT, "The patient's mail server refused the e-mail.",
              "Check the e-mail address on the patient record."),
    ErrorInfo("smtp-4xx", FailureKind.NOT_PROCESSED, "The mail server asked us to try again later.",
              "Nothing to do: it is retried automatically."),
    ErrorInfo("timeout", FailureKind.AMBIGUOUS, "The provider did not answer in time; it may have the message.",
              "Nothing to do yet: the message is checked with the provider before anything is resent."),
    ErrorInfo("connection", FailureKind.NOT_PROCESSED, "The provider could not be reached.",
              "Nothing to do: it is retried automatically."),
]
ERRORS: dict[str, ErrorInfo] = {e.code: e for e in _CATALOG}


def explain(code: str | None) -> ErrorInfo | None:
    """The plain-language meaning of a provider error code (None when there is no code)."""
    if not code:
        return None
    code = str(code)
    if code in ERRORS:
        return ERRORS[code]
    if code.isdigit() and len(code) == 3 and code[0] in "45":  # a bare SMTP reply code
        return ERRORS["smtp-5xx" if code[0] == "5" else "smtp-4xx"]
    return ErrorInfo(code, FailureKind.PERMANENT, f"The provider reported error {code}.",
                     "Look the code up in the provider's documentation or contact support.")
