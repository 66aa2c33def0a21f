"""Turn a landing file into something DuckDB reads as text: the file itself, or a UTF-8 CSV copy of it; and count
the file's physical lines without any CSV parser, so the loader can check what the parser made of them.

DuckDB reads UTF-8 and Latin-1 CSV (plain or gzip-compressed) and Parquet itself. Any other encoding a Python codec
knows (Windows-1252 from Spanish-language systems, UTF-16 and UTF-32, ISO-8859-15, Mac Roman...) is transcoded to a
temporary UTF-8 copy, text aligned in columns by runs of spaces (``delimiter: whitespace``) is rewritten with one
tab between fields, and Excel sheets are written out as a temporary CSV, so every format goes through the same
contract checks. A gzip file is recognised by its first two bytes (1f 8b), whatever its name.

When the parser's records do not account for every physical line (a stray quote swallowed the lines after it),
:func:`numbered_copy` writes the "line mode" copy: one record per physical line, each prefixed with its line
number, and the lines whose quotes do not balance set apart as malformed.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import gzip
import hashlib
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

from pipelines.ingest import landing
from pipelines.ingest.contracts import Contract, Dialect

GZIP_MAGIC = b"\x1f\x8b"
LINE_COLUMN = "_crm_line"  # the line-mode copy's first field: the record's physical line in the landing file
_BLOCK = 1 << 20
# Byte-order marks that say a file is not UTF-8 / Latin-1; the 4-byte UTF-32 ones first (FF FE starts both).
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32", "little-endian"),
    (codecs.BOM_UTF32_BE, "utf-32", "big-endian"),
    (codecs.BOM_UTF16_LE, "utf-16", "little-endian"),
    (codecs.BOM_UTF16_BE, "utf-16", "big-endian"),
)


class FileRefused(ValueError):
    """A whole file cannot be loaded under its contract; the message names the file and, where one is to blame,
    the column or line."""


@dataclasses.dataclass(frozen=True)
class LineCount:
    """A file's physical lines, counted on its bytes: ``\\n``, ``\\r\\n`` and a lone ``\\r`` each end a line, and a
    last line without a line end counts too. ``blank`` lines are empty ones (nothing between two line ends)."""

    lines: int = 0
    blank: int = 0
    has_quote: bool = False
    has_nul: bool = False  # a NUL byte anywhere: text cells lose them (no table holds one)


class _LineCounter:
    """Counts lines block by block at C speed (``bytes.count``); a ``\\r`` ending a block waits for the next one,
    so a ``\\r\\n`` split between blocks is one line end."""

    def __init__(self, quote: bytes) -> None:
        self.quote = quote
        self.ends = self.blank = 0
        self.has_quote = self.has_nul = False
        self.at_line_start = True  # the next byte starts a line
        self.seen = False
        self._carry = b""

    def feed(self, block: bytes, final: bool = False) -> None:
        data = self._carry + block if self._carry else block
        self._carry = b""
        if not final and data.endswith(b"\r"):
            data, self._carry = data[:-1], b"\r"
        if not data:
            return
        self.seen = True
        returns = data.count(b"\r")  # most files have none: skip what only \r can change
        self.ends += data.count(b"\n") + (returns - data.count(b"\r\n") if returns else 0)
        if self.quote and not self.has_quote and self.quote in data:
            self.has_quote = True
        if not self.has_nul and b"\x00" in data:
            self.has_nul = True
        starts_blank = self.at_line_start and data[:1] in (b"\n", b"\r")
        if starts_blank or b"\n\n" in data or (returns and (b"\r\r" in data or b"\n\r" in data)):
            # Rare (blank lines exist): every line end that follows a line end ends an empty line.
            single = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if returns else data
            runs = len(re.findall(rb"\n+", single))
            self.blank += single.count(b"\n") - runs + (1 if starts_blank else 0)
        self.at_line_start = data[-1:] in (b"\n", b"\r")

    def result(self) -> LineCount:
        self.feed(b"", final=True)
        last_line = 1 if self.seen and not self.at_line_start else 0
        return LineCount(self.ends + last_line, self.blank, self.has_quote, self.has_nul)


def count_lines(blocks: Iterable[bytes], quote: str = "") -> LineCount:
    counter = _LineCounter(quote.encode("utf-8"))
    for block in blocks:
        counter.feed(block)
    return counter.result()


def _blocks(handle: BinaryIO) -> Iterator[bytes]:
    return iter(lambda: handle.read(_BLOCK), b"")


@dataclasses.dataclass(frozen=True)
class Scan:
    """One pass over a landing file: the SHA-256 of its bytes, whether it is gzip (by its magic bytes), the
    byte-order mark it starts with, and its physical lines (counted through gzip)."""

    sha256: str
    gzip: bool
    byte_order_mark: tuple[str, str] | None  # (encoding family, byte order)
    lines: LineCount
    damaged: str = ""  # why a gzip stream cannot be read to its end


def _gunzipped(blocks: Iterable[bytes], damage: list[str]) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (of every member, as gzip itself reads them); what stops it early
    is said in ``damage``."""
    decompressor, fed = zlib.decompressobj(16 + zlib.MAX_WBITS), False
    try:
        for block in blocks:
            while block:
                fed = True
                yield decompressor.decompress(block)
                if decompressor.eof:  # another member may follow
                    block = decompressor.unused_data
                    decompressor, fed = zlib.decompressobj(16 + zlib.MAX_WBITS), False
                else:
                    block = b""
    except zlib.error as error:
        damage.append(f"its gzip stream is damaged ({error})")
        return
    if fed:
        damage.append("it ends in the middle of its gzip stream (cut short in transfer?)")


def scan_file(file: Path, quote: str = "", text: bool = True) -> Scan:
    """Hash the file and count its lines in one read; a file that is not ``text`` (Parquet, Excel) is only
    hashed."""
    digest = hashlib.sha256()
    with landing.open_regular(file) as handle:
        head = handle.read(4)
        handle.seek(0)
        compressed = text and head[:2] == GZIP_MAGIC

        def hashed() -> Iterator[bytes]:
            for block in _blocks(handle):
                digest.update(block)
                yield block

        damage: list[str] = []
        content = _gunzipped(hashed(), damage) if compressed else hashed()
        counter = _LineCounter(quote.encode("utf-8"))
        first = b""
        for block in content if text else ():
            if len(first) < 4:
                first += block[: 4 - len(first)]
            counter.feed(block)
        for _ in hashed():  # the rest of a damaged gzip file still counts in its hash
            pass
    mark = next(((family, order) for bom, family, order in _BYTE_ORDER_MARKS if first.startswith(bom)), None)
    return Scan(digest.hexdigest(), compressed, mark, counter.result(), "; ".join(damage))


def open_bytes(file: Path, compressed: bool) -> BinaryIO:
    return gzip.open(file, "rb") if compressed else file.open("rb")


@dataclasses.dataclass(frozen=True)
class Readable:
    """What DuckDB reads: a path, the dialect to read it with (a transcoded copy is plain UTF-8), whether it is
    gzip-compressed, its physical lines, and (line mode) the name of the field that holds each record's line."""

    path: Path
    format: str
    dialect: Dialect
    compression: str = "none"
    lines: LineCount | None = None
    line_column: str | None = None
    names: tuple[str, ...] = ()  # the columns, read from the header line by us (the line-mode copy): no sniffing


WHITESPACE = "whitespace"
_RUN_OF_SPACE = re.compile(r"[ \t]+")


def _fields_tab_separated(text: str) -> str:
    """A line whose fields are separated (or padded) by runs of spaces or tabs: one tab between fields, none at
    its ends, so a line with one field too few or too many is still a malformed record."""
    body = text.rstrip("\r\n")
    return _RUN_OF_SPACE.sub("\t", body.strip(" \t")) + text[len(body) :]


def _open_text(file: Path, encoding: str, compressed: bool) -> TextIO:
    """The file as text, line ends untouched."""
    if compressed:
        return gzip.open(file, "rt", encoding=encoding, newline="")
    return file.open("r", encoding=encoding, newline="")


def _transcode(
    source: Path,
    target: Path,
    encoding: str,
    shown_name: str,
    rewrite: Callable[[str], str] | None = None,
    compressed: bool = False,
) -> None:
    """Write ``source`` as UTF-8 to ``target``, each line through ``rewrite`` where given; line ends are kept as
    they are, so the copy has the file's lines."""
    with (
        _open_text(source, encoding, compressed) as reader,
        target.open("w", encoding="utf-8", newline="") as writer,
    ):
        line = 0
        try:
            for line, text in enumerate(reader, start=1):  # noqa: B007 - line is reported on error
                writer.write(rewrite(text) if rewrite else text)
        except UnicodeDecodeError as error:
            raise FileRefused(
                f"{shown_name}: line {line + 1} is not valid {encoding} ({error.reason}); "
                "declare the file's real encoding in its contract (csv: {encoding: ...})"
            ) from error


_LINE_END = re.compile(rb"\r\n|\r|\n")


def physical_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The file's lines without their line ends (``\\n``, ``\\r\\n`` or a lone ``\\r``), read block by block."""
    carry = b""
    for block in _blocks(handle):
        data = carry + block
        held = b""
        if data.endswith(b"\r"):  # perhaps the first half of a \r\n
            data, held = data[:-1], b"\r"
        *lines, carry = _LINE_END.split(data)
        carry += held
        yield from lines
    if carry:
        *lines, last = _LINE_END.split(carry)
        yield from lines
        if last:
            yield last


def _header_names(line: bytes, dialect: Dialect) -> list[str]:
    """The header line's names, as DuckDB's sniffer would give them: a byte-order mark dropped, a name given to an
    empty header, and a repeated name numbered."""
    text = line.decode("utf-8-sig" if dialect.encoding == "utf-8" else dialect.encoding, errors="replace")
    quoting = {"quotechar": dialect.quote} if dialect.quote else {"quoting": csv.QUOTE_NONE}
    fields = next(csv.reader([text], delimiter=dialect.delimiter, **quoting), [])
    names: list[str] = []
    for index, field in enumerate(fields, start=1):
        name = field or f"column{index}"
        while name in names or name == LINE_COLUMN:
            name += "_1"
        names.append(name)
    return names


@dataclasses.dataclass(frozen=True)
class NumberedCopy:
    """The line-mode copy of a file: the readable copy, the lines whose quotes do not balance (line number, text)
    and the blank lines left out."""

    readable: Readable
    unbalanced: tuple[tuple[int, str], ...]
    blank: int


def numbered_copy(source: Readable, target: Path) -> NumberedCopy:
    """Write ``source`` with one record per physical line, each prefixed by its line number (the header by
    :data:`LINE_COLUMN`), so no record can swallow the lines after it. A line whose quotes do not balance cannot
    be a record on its own: it is set apart; blank lines are not records and are counted."""
    dialect = source.dialect
    encoding = dialect.encoding
    delimiter = dialect.delimiter.encode(encoding)
    quote = dialect.quote.encode(encoding) if dialect.quote else b""
    first_data_line = dialect.skip_rows + (2 if dialect.header else 1)
    unbalanced: list[tuple[int, str]] = []
    blank = 0
    header: list[str] = []
    with open_bytes(source.path, source.compression == "gzip") as reader, target.open("wb") as writer:
        for number, line in enumerate(physical_lines(reader), start=1):
            if number < first_data_line:
                if number == first_data_line - 1 and dialect.header:
                    writer.write(LINE_COLUMN.encode(encoding) + delimiter + line + b"\n")
                    header = _header_names(line, dialect)
                continue
            if not line:
                blank += 1
            elif quote and line.count(quote) % 2:
                unbalanced.append((number, line.decode(encoding, errors="replace")))
            else:
                writer.write(str(number).encode(encoding) + delimiter + line + b"\n")
    numbered = dataclasses.replace(dialect, skip_rows=0)
    names = (LINE_COLUMN, *header) if header else ()
    readable_copy = Readable(target, source.format, numbered, "none", source.lines, LINE_COLUMN, names)
    return NumberedCopy(readable_copy, tuple(unbalanced), blank)


def _cell_text(value: object) -> str:
    """An Excel cell as the text a CSV export would hold: ISO dates, integers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if value.time() != dt.time() else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _excel_to_csv(source: Path, target: Path, dialect: Dialect, shown_name: str) -> None:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a file that is not a workbook
        raise FileRefused(f"{shown_name}: cannot be read as an Excel workbook ({error})") from error
    try:
        if dialect.sheet is None:
            sheet = workbook.worksheets[0]
        elif isinstance(dialect.sheet, int):
            sheet = workbook.worksheets[dialect.sheet]
        elif dialect.sheet in workbook.sheetnames:
            sheet = workbook[dialect.sheet]
        else:
            raise FileRefused(f"{shown_name}: no sheet {dialect.sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for index, row in enumerate(sheet.iter_rows(values_only=True)):
                if index >= dialect.skip_rows:
                    writer.writerow([_cell_text(value) for value in row])
    finally:
        workbook.close()


def _family(encoding: str) -> str | None:
    """'utf-16' or 'utf-32' for any spelling or byte order of those encodings, else None."""
    name = codecs.lookup(encoding).name
    return next((family for family in ("utf-16", "utf-32") if name.startswith(family)), None)


def _check_byte_order_mark(dialect: Dialect, scan: Scan, shown_name: str) -> str | None:
    """The codec to transcode a UTF-16/UTF-32 file with, None for any other; a byte-order mark that contradicts
    the contract's encoding refuses the file (DuckDB would read it as garbage, or as nothing at all)."""
    family = _family(dialect.encoding)
    if scan.byte_order_mark is None:
        return dialect.encoding if family else None
    marked, order = scan.byte_order_mark
    if marked != family:
        raise FileRefused(
            f"{shown_name}: file is {marked.upper()} ({order} byte-order mark), the contract says "
            f"{dialect.encoding}; declare csv: {{encoding: {marked}}}"
        )
    return marked  # the codec without a byte order reads the mark and drops it


@contextmanager
def readable(contract: Contract, file: Path, shown_name: str, scan: Scan | None = None) -> Iterator[Readable]:
    """The file as DuckDB should read it, with its physical lines; temporary copies are deleted afterwards."""
    scan = scan or scan_file(file, contract.dialect.quote)
    if scan.damaged:
        raise FileRefused(f"{shown_name}: cannot be read: {scan.damaged}; ask for the file to be sent again")
    dialect = contract.dialect
    compressed = scan.gzip
    aligned = contract.format == "csv" and dialect.delimiter == WHITESPACE
    wide = _check_byte_order_mark(dialect, scan, shown_name) if contract.format == "csv" else None
    if contract.format == "parquet" or (
        contract.format == "csv" and dialect.native_encoding and not aligned and wide is None
    ):
        native = dataclasses.replace(dialect, encoding=dialect.native_encoding or "utf-8")
        with landing.safe_path(file) as literal:  # DuckDB expands globs: give it a name it takes as it is
            yield Readable(literal, contract.format, native, "gzip" if compressed else "none", scan.lines)
        return
    with tempfile.TemporaryDirectory(prefix="crm-ingest-") as folder:
        copy = Path(folder) / (landing.plain_name(file.stem) + ".csv")
        if contract.format == "xlsx":
            _excel_to_csv(file, copy, dialect, shown_name)
            csv_dialect = Dialect(delimiter=",", header=dialect.header, decimal_separator=dialect.decimal_separator,
                                  thousands_separator=dialect.thousands_separator)  # fmt: skip
            yield Readable(copy, "csv", csv_dialect)  # a sheet has rows, not lines: nothing to count
            return
        codec = wide or dialect.encoding
        if aligned:  # no quoting: a quote character is text in such files
            _transcode(file, copy, codec, shown_name, _fields_tab_separated, compressed)
            csv_dialect = dataclasses.replace(dialect, encoding="utf-8", delimiter="\t", quote="")
        else:
            _transcode(file, copy, codec, shown_name, compressed=compressed)
            csv_dialect = dataclasses.replace(dialect, encoding="utf-8")
        with copy.open("rb") as handle:
            lines = count_lines(_blocks(handle), csv_dialect.quote)
        yield Readable(copy, "csv", csv_dialect, "none", lines)


@contextmanager
def line_mode(source: Readable) -> Iterator[NumberedCopy]:
    """The line-mode copy of ``source`` (see :func:`numbered_copy`), deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="crm-ingest-lines-") as folder:
        yield numbered_copy(source, Path(folder) / "numbered.csv")
