"""Posts to predict on: a CSV or JSONL file with ``post_id`` and ``text``, checked row by row.

Every problem names the file, the row and the fix, and all of them are reported at once; the text of a
post never appears in a message.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.errors import DataError
from redsm5_hpo.labels import SYMPTOMS

MAX_PROBLEMS = 20


def read_posts(path: Path, id_column: str = "post_id", text_column: str = "text") -> list[Post]:
    """The posts of ``path`` (``.csv``, or ``.jsonl`` / ``.json`` with one object per line), unlabelled; each
    post's id and text are read from ``id_column`` and ``text_column``."""
    path = Path(path)
    columns = (id_column, text_column)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; give a CSV or JSONL file with the columns {id_column} and {text_column}"
        )
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); re-save it as UTF-8"
        ) from None
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    rows = _jsonl_rows(path, content, columns) if jsonl else _csv_rows(path, content, columns)
    problems: list[str] = []
    posts: list[Post] = []
    seen: dict[str, str] = {}
    for place, row in rows:
        post_id, text = row.get(id_column), row.get(text_column)
        where = f"{path} {place}"
        if not isinstance(post_id, str | int) or isinstance(post_id, bool) or not str(post_id).strip():
            problems.append(f"{where}: {id_column} is empty or not a string; give every post an id")
            continue
        post_id = str(post_id).strip()
        if not isinstance(text, str):
            kind = type(text).__name__
            problems.append(
                f"{where} ({id_column} {post_id}): {text_column} is {kind}, not text; put the post's text there"
            )
        elif not text.strip():
            problems.append(f"{where} ({id_column} {post_id}): {text_column} is empty; fill it or remove the row")
        elif post_id in seen:
            problems.append(f"{where}: {id_column} {post_id} repeats {seen[post_id]}; ids must be unique")
        else:
            seen[post_id] = place
            posts.append(Post(post_id, text, (0,) * len(SYMPTOMS), ()))
    if problems:
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise DataError(f"{len(problems)} problem(s) in {path}:\n  " + "\n  ".join(problems[:MAX_PROBLEMS]) + more)
    if not posts:
        raise DataError(f"{path}: no posts in it; it needs a header ({id_column},{text_column}) and one row per post")
    return posts


def _csv_rows(path: Path, content: str, columns: tuple[str, str]) -> list[tuple[str, dict[str, object]]]:
    try:
        reader = csv.DictReader(io.StringIO(content, newline=""))
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            found = ", ".join(reader.fieldnames or []) or "none"
            raise DataError(
                f"{path}: no {', '.join(missing)} column (columns found: {found}); the first line must name the "
                f"columns {columns[0]} and {columns[1]}, or name yours with --id-column / --text-column"
            )
        return [(f"row {index + 2}", dict(row)) for index, row in enumerate(reader)]  # row 1 is the header
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV file ({e}); quote texts that hold commas or line breaks") from None


def _jsonl_rows(path: Path, content: str, columns: tuple[str, str]) -> list[tuple[str, dict[str, object]]]:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {number}: not JSON ({e.msg}); write one JSON object per line") from None
        if not isinstance(value, dict):
            raise DataError(
                f"{path} line {number}: a JSON {type(value).__name__}, not an object with {columns[0]} and {columns[1]}"
            )
        rows.append((f"line {number}", value))
    return rows
