"""The portfolio's files: a folder of CSV files or one XLSX workbook, one table per entity.

A folder holds ``owners.csv``, ``plants.csv`` … (UTF-8, a BOM allowed, so files saved by Excel
read as they are); a workbook holds sheets of the same names. Either may leave tables out: what
is not there is not touched. The first row of each table names its columns, in any order.

Cells come back as they were written: text from CSV, and from XLSX the types openpyxl reads
(numbers, dates, booleans) for :mod:`settlement.portfolio.tables` to parse. Every row keeps its
place (``meters.csv line 14``, ``sheet meters row 14``) for the messages people read.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

MAX_ROWS = 100_000  # per table: far beyond any company's plants, far inside memory
MAX_CELL = 32_767  # characters: what an XLSX cell holds (a tariff document inline is well below)


class UnreadableFile(Exception):
    """The file or folder is not a portfolio this module reads; the message names the place."""


@dataclass(frozen=True)
class Row:
    """One data row: where it is (for messages) and its cells by lower-cased column name."""

    place: str
    cells: Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    folder: Path | None = None  # a CSV table's folder: files it names (tariff documents) are read from there


def read(path: Path, names: Sequence[str]) -> dict[str, Table]:
    """The tables named ``names`` found at ``path`` (a folder of CSV files or an .xlsx workbook).

    Raises
    ------
    UnreadableFile
        No such file or folder, a workbook openpyxl cannot open, a table without a header, a
        column named twice, more than :data:`MAX_ROWS` rows, or none of ``names`` present.
    """
    if path.is_dir():
        tables = {name: _csv_table(path / f"{name}.csv", name) for name in names if (path / f"{name}.csv").is_file()}
        where = f"folder {path}"
    elif path.is_file() and path.suffix.lower() == ".xlsx":
        tables = _workbook_tables(path, names)
        where = f"workbook {path.name}"
    elif path.exists():
        raise UnreadableFile(f"{path}: not a folder of CSV files or an .xlsx workbook")
    else:
        raise UnreadableFile(f"{path}: no such file or folder")
    if not tables:
        raise UnreadableFile(f"{where} has none of the tables {', '.join(names)}")
    return tables


def read_table(path: Path, name: str, *, max_rows: int = MAX_ROWS) -> Table:
    """One table from one file: a ``.csv`` file, or the sheet ``name`` of an ``.xlsx`` workbook.

    For imports of a single table (market prices) with the same cells, places and refusals as
    :func:`read`; ``max_rows`` raises the row limit for tables of many small rows.

    Raises
    ------
    UnreadableFile
        No such file, neither ``.csv`` nor ``.xlsx``, a workbook without the sheet ``name``, or
        anything :func:`read` refuses in a table.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UnreadableFile(f"{path}: no such file")
    if suffix == ".csv":
        return _csv_table(path, name, max_rows)
    if suffix == ".xlsx":
        tables = _workbook_tables(path, [name], max_rows)
        if name not in tables:
            raise UnreadableFile(f"workbook {path.name} has no sheet {name!r}")
        return tables[name]
    raise UnreadableFile(f"{path}: not a .csv file or an .xlsx workbook")


def _header(names: Sequence[Any], place: str) -> tuple[str, ...]:
    columns = tuple(str(n).strip().lower() if n is not None else "" for n in names)
    while columns and columns[-1] == "":
        columns = columns[:-1]  # spreadsheets often carry empty trailing header cells
    if not columns:
        raise UnreadableFile(f"{place}: the first row must name the columns")
    if "" in columns:
        raise UnreadableFile(f"{place}: column {columns.index('') + 1} of the header has no name")
    seen = set()
    for column in columns:
        if column in seen:
            raise UnreadableFile(f"{place}: the header names column {column!r} twice")
        seen.add(column)
    return columns


def _csv_table(file: Path, name: str, max_rows: int = MAX_ROWS) -> Table:
    try:
        text = file.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{file.name}: not UTF-8 text (byte {exc.start}); save it as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise UnreadableFile(f"{file.name}: the file is empty, its first line must name the columns")
        columns = _header(header, f"{file.name} line 1")
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line between rows is no row
            place = f"{file.name} line {reader.line_num}"
            if len(cells) > len(columns):
                raise UnreadableFile(f"{place}: {len(cells)} cells, the header has {len(columns)} columns")
            rows.append(Row(place, dict(zip(columns, cells))))
            if len(rows) > max_rows:
                raise UnreadableFile(f"{file.name}: more than {max_rows} rows")
    except csv.Error as exc:
        raise UnreadableFile(f"{file.name} line {reader.line_num}: {exc}") from None
    return Table(name, columns, tuple(rows), folder=file.parent)


def _workbook_tables(path: Path, names: Sequence[str], max_rows: int = MAX_ROWS) -> dict[str, Table]:
    from openpyxl import load_workbook  # only imports that read workbooks pay for openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    import zipfile
    try:
        # read_only streams the rows; data_only takes a formula's cached value, never the formula
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise UnreadableFile(f"{path.name}: not an .xlsx workbook openpyxl can read ({exc.__class__.__name__})") from None
    try:
        tables = {}
        for name in names:
            if name not in book.sheetnames:
                continue
            sheet = book[name]
            lines = sheet.iter_rows(values_only=True)
            header = next(lines, None)
            if header is None:
                raise UnreadableFile(f"sheet {name}: empty, its first row must name the columns")
            columns = _header(header, f"sheet {name} row 1")
            rows = []
            for number, cells in enumerate(lines, start=2):
                cells = tuple(cells)
                if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                    continue
                place = f"sheet {name} row {number}"
                extra = [c for c in cells[len(columns):] if c is not None]
                if extra:
                    raise UnreadableFile(f"{place}: a value right of the last named column")
                rows.append(Row(place, dict(zip(columns, cells))))
                if len(rows) > max_rows:
                    raise UnreadableFile(f"sheet {name}: more than {max_rows} rows")
            tables[name] = Table(name, columns, tuple(rows))
        return tables
    finally:
        book.close()


# --- writing (export) ---------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A value as a CSV cell: decimals as written (no float), dates ISO, booleans true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def write_folder(folder: Path, tables: Iterable[tuple[str, Sequence[str], list[list[Any]]]],
                 files: Mapping[str, str] = {}) -> list[Path]:
    """Write each table as ``<name>.csv`` (UTF-8 with BOM, so Excel shows the Chinese) and each of
    ``files`` (relative name → text) beside them; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns, rows in tables:
        out = folder / f"{name}.csv"
        with out.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([[cell_text(v) for v in row] for row in rows])
        written.append(out)
    for relative, text in files.items():
        out = folder / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, "utf-8")
        written.append(out)
    return written


def write_workbook(path: Path, tables: Iterable[tuple[str, Sequence[str], list[list[Any]]]]) -> Path:
    """Write the tables as the sheets of one workbook. Decimals are written as text, so a price
    such as 0.385600 keeps its digits (a float cell would not survive the way back exactly)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for name, columns, rows in tables:
        sheet = book.create_sheet(name)
        sheet.append(list(columns))
        for row in rows:
            sheet.append([cell_text(v) if isinstance(v, (Decimal, dt.date, bool)) or v is None else v for v in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
