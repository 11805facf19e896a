"""A release CSV checked before the ``datasets`` library parses it, so a damaged file is one error that
names the line and the fix instead of a parser traceback. Pure: bytes in, a problem (or None) out.

Accepted as they are: a UTF-8 byte-order mark, Windows line endings, blank lines, extra columns, and
rows with fewer fields than the header (their missing fields are empty).
"""

from __future__ import annotations

import codecs
import csv
import io


def csv_problem(data: bytes) -> str | None:
    """What makes ``data`` unreadable as a CSV table, with its line and how to fix it; None if it reads."""
    if not data.strip():
        return "is empty; export the table again (a header line, then one line per row)"
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return (
            f"is not UTF-8 text: line {line}, column {column} holds the byte 0x{data[e.start]:02x}. Re-save it as "
            "UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8` when it was written as Latin-1"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            return (
                f"cannot be parsed from line {line} on ({e}): a quote is opened and not closed, or a quoted field "
                'is followed by more text. Close the quote; a quote inside a quoted field is written twice ("")'
            )
        if not any(field.strip() for field in row):
            continue
        if header is None:
            header = row
        elif len(row) > len(header):
            return (
                f"line {line} has {len(row)} fields where the header has {len(header)}: a field that contains a "
                "comma must be quoted"
            )
        else:
            rows += 1
    if rows == 0:
        return "has a header but no rows"
    return None
