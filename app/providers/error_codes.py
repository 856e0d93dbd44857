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
    # Unifonic (Saudi SMS). ER-xx come in the reply's errorCode; unifonic-NNN are HTTP statuses.
    ErrorInfo("ER-01", FailureKind.CONFIGURATION, "Our Unifonic account has no balance left.",
              "An admin must top up the Unifonic account; messages can go through another provider meanwhile."),
    ErrorInfo("ER-02", FailureKind.PERMANENT, "Unifonic: the number is not a valid mobile number.",
              "Correct the phone number on the patient record, then retry."),
    ErrorInfo("ER-03", FailureKind.PERMANENT, "Unifonic: the number has too many digits.",
              "Correct the phone number on the patient record (country code and number only), then retry."),
    ErrorInfo("ER-04", FailureKind.PERMANENT, "Unifonic: the number has too few digits.",
              "Correct the phone number on the patient record (include the country code), then retry."),
    ErrorInfo("ER-05", FailureKind.PERMANENT, "Unifonic cannot route a message to this number's network or country.",
              "Check the number, or use another channel (e.g. WhatsApp or e-mail)."),
    ErrorInfo("ER-07", FailureKind.PERMANENT, "The operator filtered the message content (e.g. a link that is not "
              "allow-listed).", "Review the wording and links of the template before sending again."),
    ErrorInfo("ER-08", FailureKind.CONFIGURATION, "Our SMS sender name is not registered with Unifonic.",
              "An admin must register the sender name with Unifonic or choose a registered one in Settings."),
    ErrorInfo("ER-09", FailureKind.PERMANENT,
              "Identical content was already sent to this number; not resent.",
              "Do not resend the same text. Change the wording if a new message is really needed."),
    ErrorInfo("unifonic-401", FailureKind.CONFIGURATION, "Unifonic refused our credentials (AppSid).",
              "An admin must check the Unifonic AppSid in Settings."),
    ErrorInfo("unifonic-402", FailureKind.CONFIGURATION, "Unifonic refused the request for account or payment "
              "reasons.", "An admin must check the Unifonic account (balance and plan)."),
    ErrorInfo("unifonic-403", FailureKind.CONFIGURATION, "Unifonic does not allow our account to send this.",
              "An admin must check the Unifonic account permissions."),
    ErrorInfo("unifonic-409", FailureKind.AMBIGUOUS, "Unifonic already has a message with this reference.",
              "Nothing to do: the message is checked with Unifonic; it is never sent twice."),
    ErrorInfo("unifonic-410", FailureKind.PERMANENT, "Unifonic: the phone number is not in a valid format.",
              "Correct the phone number on the patient record, then retry."),
    ErrorInfo("unifonic-429", FailureKind.NOT_PROCESSED, "Unifonic was busy and did not take the message.",
              "Nothing to do: it is retried automatically."),
    ErrorInfo("unifonic-480", FailureKind.CONFIGURATION, "Unifonic does not allow our sender name for this "
              "message.", "An admin must check the sender name (service messages and -AD senders differ)."),
    ErrorInfo("unifonic-5xx", FailureKind.AMBIGUOUS, "Unifonic had an internal error; it may or may not have the "
              "message.", "Nothing to do yet: the message is checked with Unifonic before anything is resent."),
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
