"""Damaged CSV bytes -> one problem naming the line and the fix; what is merely unusual reads fine."""

import pytest

from redsm5_hpo.data.csv_checks import csv_problem

GOOD = b'post_id,text\np1,"Hello, world."\np2,"A post\nover two lines."\n'


@pytest.mark.parametrize(
    "data",
    [
        GOOD,
        b"\xef\xbb\xbf" + GOOD,  # a byte-order mark
        GOOD.replace(b"\n", b"\r\n"),  # Windows line endings
        GOOD + b"\n\n",  # blank lines
        b"post_id,text,extra\np1,hi,x\n",  # extra columns
        b"post_id,text\np1\n",  # fewer fields: the rest is empty
        b'post_id,text\np1,"She said ""no""."\n',  # doubled quotes inside a quoted field
    ],
)
def test_unusual_but_valid_files_read(data) -> None:
    assert csv_problem(data) is None


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (b"", ["is empty"]),
        (b"  \n\n", ["is empty"]),
        (b"post_id,text\n", ["header but no rows"]),
        (b"post_id,text\np1,caf\xe9\n", ["not UTF-8", "line 2, column 7", "0xe9", "iconv"]),
        (b'post_id,text\np1,ok\np2,"never closed\np3,more\n', ["line 3", "quote is opened and not closed"]),
        (b'post_id,text\np1,"closed" then more\n', ["line 2", "quote"]),
        (b"post_id,text\np1,a,b\n", ["line 2 has 3 fields where the header has 2", "must be quoted"]),
    ],
)
def test_a_damaged_file_is_one_problem_with_its_line_and_fix(data, needles) -> None:
    problem = csv_problem(data)
    assert problem is not None
    for needle in needles:
        assert needle in problem
