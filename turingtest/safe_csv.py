"""CSV that a spreadsheet opens as data: every CSV the product writes goes through here."""

import csv
import re

# A cell that a spreadsheet would run as a formula (OWASP's CSV injection
# rule, plus line feed): anything starting with one of these. Numbers are
# left as they are.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value):
    """``value`` made safe to open in a spreadsheet.

    Text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets
    a leading single quote, so Excel, LibreOffice and Google Sheets show it as
    text instead of evaluating it (``=HYPERLINK(...)`` in a subspecialty would
    otherwise send data away). Plain numbers, written as text or not, and
    every non-text value pass unchanged.

    Carriage returns inside text become line feeds: the writer ends lines
    with ``\n`` and so quotes only fields holding ``\n``; a bare ``\r`` in
    an unquoted field would split the row for most CSV readers.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose every cell goes through :func:`csv_cell`.

    Every CSV the product writes uses this class.
    """

    def writerow(self, rowdict):
        return super().writerow({k: csv_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts):
        for row in rowdicts:
            self.writerow(row)
