"""What every staff upload (a bulk send's recipient list, an appointment list) reads the same way:
how big an Excel workbook may unpack to, and the words a "language" column may hold."""

from __future__ import annotations

import io
import zipfile

from app.errors import ValidationError
from db.enums import Language

# A workbook is a zip: a small file may unpack to gigabytes (a zip bomb); this bounds what is read.
MAX_XLSX_UNPACKED_BYTES = 256 * 1024 * 1024

# What staff type in a language column (English and Arabic spellings), lower-cased.
LANGUAGE_WORDS: dict[str, Language] = {
    "en": Language.EN, "english": Language.EN, "انجليزي": Language.EN, "الإنجليزية": Language.EN,
    "إنجليزي": Language.EN,
    "ar": Language.AR, "arabic": Language.AR, "عربي": Language.AR, "العربية": Language.AR,
}


def not_a_workbook() -> ValidationError:
    return ValidationError("The file could not be read as an Excel workbook (.xlsx).", field="file")


def check_workbook(data: bytes) -> None:
    """A zip whose parts unpack to at most ``MAX_XLSX_UNPACKED_BYTES``, else a clear ValidationError."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise not_a_workbook() from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise ValidationError(f"The workbook unpacks to {unpacked / 1024 / 1024:,.0f} MB; at most "
                              f"{MAX_XLSX_UNPACKED_BYTES / 1024 / 1024:,.0f} MB. Save it as CSV, or split it.",
                              field="file")
