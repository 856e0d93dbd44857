"""Recipient lists as clinics really send them: Arabic Excel CSVs, BOMs, semicolons, junk rows."""

from __future__ import annotations

import io

import pytest

from app.errors import ValidationError
from app.services.bulk import recipients as ri
from db.enums import Channel


def load(data: bytes, filename: str = "list.csv", **mapping: object) -> ri.ImportResult:
    table = ri.read_table(filename, data)
    chosen = ri.guess_mapping(table, Channel.SMS)
    if mapping:
        chosen = ri.ColumnMapping(**{"contact": chosen.contact, **mapping})  # type: ignore[arg-type]
    return ri.to_recipients(table, chosen, Channel.SMS, "SA")


def test_windows_1256_arabic_export_is_read_with_names_intact() -> None:
    data = "الاسم,الجوال\nسارة,0501234567\nأحمد,0551234567\n".encode("cp1256")
    result = load(data)
    assert [r["name"] for r in result.recipients] == ["سارة", "أحمد"]
    assert [r["recipient"] for r in result.recipients] == ["+966501234567", "+966551234567"]
    assert ri.read_table("list.csv", data).encoding == "windows-1256"


def test_utf8_bom_does_not_leak_into_the_first_column_name() -> None:
    table = ri.read_table("list.csv", "\ufeffphone,name\n0501234567,Sara\n".encode())
    assert table.columns == ["phone", "name"] and table.encoding == "utf-8-sig"


def test_semicolons_and_blank_lines_keep_file_row_numbers() -> None:
    result = load(b"phone;name\n\n0501234567;Sara\n\n\n12;Bad\n")
    assert [r["row"] for r in result.recipients] == [3]
    assert result.rejected[0].row == 6 and "too short" in result.rejected[0].reason


def test_fifty_thousand_rows_with_three_percent_malformed() -> None:
    lines = ["phone,name"]
    for i in range(50_000):
        lines.append(f"05{i:08d}x,Bad {i}" if i % 100 < 3 else f"+9665{i:08d},P {i}")
    result = load("\n".join(lines).encode())
    assert len(result.recipients) == 48_500
    assert len(result.rejected) == 1_500
    assert all("letters" in r.reason for r in result.rejected)
    assert result.rejected[0].row == 2  # the header is row 1


def test_duplicates_are_removed_with_the_row_they_repeat() -> None:
    result = load(b"phone\n0501234567\n+966 50 123 4567\n00966501234567\n")
    assert len(result.recipients) == 1
    assert [r.reason for r in result.rejected] == ["duplicate of row 2", "duplicate of row 2"]


def test_a_file_without_a_phone_column_says_which_columns_it_has() -> None:
    table = ri.read_table("list.csv", b"name,city\nSara,Riyadh\n")
    mapping = ri.guess_mapping(table, Channel.SMS)
    with pytest.raises(ValidationError, match=r"phone.*name, city"):
        ri.to_recipients(table, mapping, Channel.SMS, "SA")


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_refused_plainly(data: bytes) -> None:
    with pytest.raises(ValidationError, match="empty"):
        ri.read_table("list.csv", data)


def test_a_header_without_rows_is_refused() -> None:
    with pytest.raises(ValidationError, match="no recipients"):
        ri.read_table("list.csv", b"phone,name\n")


def test_a_file_over_twenty_megabytes_is_refused_with_its_size() -> None:
    data = b"phone\n" + b"0501234567\n" * (2 * 1024 * 1024)  # 22 MB
    with pytest.raises(ValidationError, match=r"22\.0 MB; the limit is 20 MB"):
        ri.read_table("list.csv", data)


def test_a_twenty_megabyte_file_within_the_limit_is_refused_for_its_row_count() -> None:
    row = b"0501234567,Patient name\n"
    data = b"phone,name\n" + row * ((ri.MAX_UPLOAD_BYTES - 11) // len(row))
    assert len(data) <= ri.MAX_UPLOAD_BYTES
    with pytest.raises(ValidationError, match="at most 100,000 per send"):
        ri.read_table("list.csv", data)


def test_excel_files_are_read_including_numbers_stored_as_numbers() -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Mobile", "Name", "Language", "Clinic room"])
    sheet.append([966501234567, "Sara", "Arabic", "3"])
    sheet.append([None, None, None, None])
    sheet.append(["0551234567", "Omar", "en", "5"])
    buffer = io.BytesIO()
    book.save(buffer)
    result = load(buffer.getvalue(), "list.xlsx")
    assert [(r["recipient"], r["language"], r["variables"]) for r in result.recipients] == [
        ("+966501234567", "ar", {"clinic_room": "3"}), ("+966551234567", "en", {"clinic_room": "5"})]


def test_a_broken_excel_file_is_refused_plainly() -> None:
    with pytest.raises(ValidationError, match="Excel"):
        ri.read_table("list.xlsx", b"not a workbook")


def test_pasted_numbers_one_per_line() -> None:
    table = ri.read_pasted("0501234567\n\n0551234567\n")
    result = ri.to_recipients(table, ri.guess_mapping(table, Channel.SMS), Channel.SMS, "SA")
    assert len(result.recipients) == 2


def test_email_lists_are_lower_cased_and_checked() -> None:
    table = ri.read_table("list.csv", b"email\nSara@Example.com\nnot-an-address\n")
    result = ri.to_recipients(table, ri.guess_mapping(table, Channel.EMAIL), Channel.EMAIL, "SA")
    assert result.recipients[0]["recipient"] == "sara@example.com"
    assert result.rejected[0].row == 3
