"""Every case of the hostile corpus (tests/fixtures/hostile) gets its expected outcome at the loader.

Each case is copied to a temporary folder, where its ``setup`` builds what git cannot hold (symbolic links, a FIFO,
a file named ``orders*.csv``, large generated files), then loaded into a fresh in-memory DuckDB. Besides each
file's expected status, counts and quarantined rows (record number, column, reason code), every case checks that
rows read = loaded + quarantined + filtered for every file, that the ledger says the same, that no text in any
table or message holds the temporary folder's absolute path or a text the case lists as secret, and that no table
was created outside the raw tables the contract feeds and the meta bookkeeping.
"""

from __future__ import annotations

import datetime as dt
import errno
import inspect
import os
import shutil
import threading
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.ingest.contracts import ContractError, load_contracts
from pipelines.ingest.loader import load_table

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
CASES = sorted(path for path in HOSTILE.iterdir() if path.is_dir())
FIFO_WAIT_SECONDS = 10


def test_the_hostile_corpus_has_at_least_twenty_five_cases():
    assert len(CASES) >= 25
    for case in CASES:
        assert (case / "expected.yaml").is_file(), case.name


# --- setup: what a case builds in its temporary copy ---------------------------------------------------------


def _generated_row(template: str, index: int) -> str:
    day = dt.date(2025, 1, 1) + dt.timedelta(days=index % 365)
    return template.format(i=index, d=day.isoformat(), q=1 + index % 5, a=f"{index % 97 + 3}.50")


def _generate(root: Path, spec: dict) -> None:
    long_text = ("0123456789" * (spec.get("long", 0) // 10 + 1))[: spec.get("long", 0)]
    replace = {int(row): text.replace("{long}", long_text) for row, text in (spec.get("replace") or {}).items()}
    lines = [spec["header"]] + [
        replace.get(index) or _generated_row(spec["row"], index) for index in range(1, spec["rows"] + 1)
    ]
    path = root / spec["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def prepare(case: Path, tmp_path: Path) -> Path:
    """Copy the case to ``tmp_path/case`` and build its setup; files 'outside' go to ``tmp_path`` beside it."""
    root = tmp_path / "case"
    shutil.copytree(case, root, symlinks=True)
    expected = yaml.safe_load((root / "expected.yaml").read_text(encoding="utf-8"))
    for action in expected.get("setup") or []:
        [(kind, spec)] = action.items()
        if kind == "generate":
            _generate(root, spec)
        elif kind == "outside":
            target = tmp_path / spec["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(spec["text"], encoding="utf-8")
        elif kind == "symlink":
            link = root / spec["link"]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(tmp_path / spec["target"])
        elif kind == "fifo":
            os.mkfifo(root / spec)
        elif kind == "rename":
            (root / spec["from"]).rename(root / spec["to"])
        else:
            raise AssertionError(f"{case.name}: unknown setup action {kind!r}")
    return root


class FifoWatch:
    """Notices when anything opens a FIFO for reading (and unblocks it: a writer that opens and closes at once
    gives the reader an end of file, so a loader that opens the FIFO fails this test instead of hanging it)."""

    def __init__(self, fifos: list[Path]):
        self.fifos, self.opened, self._stop = fifos, [], threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for fifo in self.fifos:
                try:
                    descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as error:  # ENXIO: no reader has it open, as it should be
                    if error.errno not in (errno.ENXIO, errno.ENOENT):
                        raise
                    continue
                self.opened.append(fifo.name)
                os.close(descriptor)
            time.sleep(0.05)

    def __enter__(self) -> FifoWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(FIFO_WAIT_SECONDS)


def _plausibility_arguments() -> dict:
    """The settings' plausibility bounds, for a loader that takes them (the defaults: factor 1000, 100 years,
    severity error); nothing for one that does not yet."""
    if "plausibility" not in inspect.signature(load_table).parameters:
        return {}
    from pipelines.ingest import plausibility
    from pipelines.settings import load_settings

    settings = load_settings()
    build = getattr(plausibility.Plausibility, "from_settings", None)
    return {"plausibility": build(settings) if build else plausibility.Plausibility(settings)}


# --- what a case checks -----------------------------------------------------------------------------------------


def _acceptable(value) -> list:
    return value if isinstance(value, list) else [value]


def _texts(value):
    """Every piece of text inside a fetched value (lists, dicts and structs included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)


def all_tables(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return connection.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database() and table_schema not in ('information_schema', 'pg_catalog') "
        "and table_type = 'BASE TABLE' order by 1, 2"
    ).fetchall()


def texts_holding(connection: duckdb.DuckDBPyConnection, needle: str, schemas: tuple[str, ...] | None = None):
    """(table, text) of every value of every table (of ``schemas``) whose text holds ``needle``."""
    found = []
    for schema, table in all_tables(connection):
        if schemas is not None and schema not in schemas:
            continue
        quoted = f'"{schema}"."{table}"'  # names listed by DuckDB itself, quoted for the query
        for row in connection.execute(f"select * from {quoted}").fetchall():
            found += [(quoted, text[:80]) for text in _texts(list(row)) if needle in text]
    return found


def _match_quarantine(actual: list[tuple], wanted: list[dict], file: str) -> None:
    """Actual (row, column, reason_code, reason) in order against the expected entries; ``optional`` entries may
    be absent, ``repeat`` ones match any number of rows, ``row: any`` any record number."""
    position = 0
    for entry in wanted:
        matched = 0
        while position < len(actual):
            row, column, code, reason = actual[position]
            fits = (
                (entry["row"] == "any" or row == entry["row"])
                and column == entry["column"]
                and code in _acceptable(entry["reason_code"])
                and (entry.get("reason") is None or entry["reason"] in (reason or ""))
            )
            if not fits:
                break
            matched, position = matched + 1, position + 1
            if not entry.get("repeat"):
                break
        assert matched or entry.get("optional"), (
            f"{file}: expected quarantined {entry}, the quarantine holds {actual[position:] or 'nothing more'}"
        )
    assert position == len(actual), f"{file}: unexpected quarantine entries {actual[position:]}"


def check_files(connection, loads, expected_files: dict, tmp_path: Path, stage: str) -> None:
    by_file = {load.file: load for load in loads}
    unexpected = set(by_file) - set(expected_files)
    assert not unexpected, f"{stage}: files loaded that the case does not expect: {sorted(unexpected)}"
    for file, wanted in expected_files.items():
        statuses = _acceptable(wanted["status"])
        load = by_file.get(file)
        ledger = connection.execute(
            "select rows_read, rows_loaded, rows_quarantined, rows_filtered, status from meta.load_ledger "
            "where file = ? and status <> 'replaced'",
            [file],
        ).fetchall()
        if load is None:
            assert "absent" in statuses, f"{stage}: {file} was not listed (no load at all); expected {statuses}"
            assert ledger == [], f"{stage}: {file} is in the ledger but the loader returned nothing for it"
            continue
        assert load.status in statuses, f"{stage}: {file} is {load.status}, expected {statuses}: {load.message}"
        assert load.rows_read == load.rows_loaded + load.rows_quarantined + load.rows_filtered, (stage, load)
        for field in ("rows_read", "rows_loaded", "rows_quarantined", "rows_replaced"):
            if field in wanted:
                assert getattr(load, field) in _acceptable(wanted[field]), (
                    f"{stage}: {file} {field} = {getattr(load, field)}, expected {wanted[field]} ({load.message})"
                )
        assert ledger == [(load.rows_read, load.rows_loaded, load.rows_quarantined, load.rows_filtered, load.status)]
        for words in wanted.get("message", []):
            assert words in load.message, f"{stage}: {file}: {words!r} not in the message {load.message!r}"
        assert str(tmp_path) not in load.message, f"{stage}: {file}: the message shows an absolute path"
        quarantined = connection.execute(
            "select row_number, column_name, reason_code, reason from meta.quarantine where file = ? "
            "order by row_number nulls first, column_name nulls first",
            [file],
        ).fetchall()
        _match_quarantine(quarantined, wanted.get("quarantined", []), f"{stage}: {file}")
        for entry in quarantined:
            assert str(tmp_path) not in (entry[3] or ""), f"{stage}: {file}: a quarantine reason shows a path"


def check_state(connection, contract, expected: dict, loads, tmp_path: Path, stage: str) -> None:
    table = f"raw.{contract.name}"
    if "table_rows" in expected:
        assert connection.execute(f"select count(*) from {table}").fetchone()[0] == expected["table_rows"], stage
    if "values" in expected:
        rows = connection.execute(expected["values"]["sql"]).fetchall()
        assert [list(row) for row in rows] == expected["values"]["rows"], stage
    if "ledger" in expected:
        rows = connection.execute("select status, rows_read from meta.load_ledger order by status").fetchall()
        assert [list(row) for row in rows] == expected["ledger"], stage
    if "unknown_columns_include" in expected:
        unknown = [column for load in loads for column in load.unknown_columns]
        for wanted in expected["unknown_columns_include"]:
            name = wanted["text"] * wanted["times"] if isinstance(wanted, dict) else wanted
            assert name in unknown, f"{stage}: header {name[:60]!r} not among the unknown columns {unknown}"
    allowed = {("raw", name) for name in contract.tables}
    strangers = [(schema, name) for schema, name in all_tables(connection) if schema != "meta"]
    assert set(strangers) <= allowed, f"{stage}: tables created from a name? {sorted(set(strangers) - allowed)}"
    assert not [name for _, name in all_tables(connection) if "pwned" in name.lower()]
    assert {"load_ledger", "quarantine"} <= {name for schema, name in all_tables(connection) if schema == "meta"}
    for needle in [str(tmp_path), *expected.get("nowhere", [])]:
        assert not texts_holding(connection, needle), (
            f"{stage}: {needle!r} found in {texts_holding(connection, needle)}"
        )
        assert not [load.file for load in loads if needle in load.message], f"{stage}: {needle!r} in a message"
    for needle in expected.get("nowhere_in_raw", []):
        found = texts_holding(connection, needle, schemas=("raw",))
        assert not found, f"{stage}: {needle!r} reached the raw table: {found}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_file_gets_its_expected_outcome(case: Path, tmp_path: Path):
    root = prepare(case, tmp_path)
    expected = yaml.safe_load((root / "expected.yaml").read_text(encoding="utf-8"))
    if "contract_error" in expected:
        crafted = [path.name for path in (root / "contracts").rglob("*.yaml")]
        assert any("pwned" in name for name in crafted), "the crafted contract file was not made"
        with pytest.raises(ContractError) as error:
            load_contracts(root / "contracts")
        for words in expected["contract_error"]:
            assert words in str(error.value), f"{words!r} not in {error.value}"
        return
    [contract] = load_contracts(root / "contracts")
    connection = duckdb.connect()
    fifos = [path for path in (root / "landing").rglob("*") if path.is_fifo()]
    started = time.monotonic()
    with FifoWatch(fifos) as watch:
        loads = load_table(connection, contract, root / "landing", run_id="hostile", **_plausibility_arguments())
    assert not watch.opened, f"the loader opened the FIFO {watch.opened} for reading"
    assert time.monotonic() - started < 60, "the load took over a minute"
    check_files(connection, loads, expected["files"], tmp_path, "first load")
    check_state(connection, contract, expected, loads, tmp_path, "first load")
    if "second" in expected:
        second = expected["second"]
        shutil.rmtree(root / "landing")
        shutil.copytree(root / second["landing"], root / "landing")
        loads = load_table(connection, contract, root / "landing", run_id="hostile-2", **_plausibility_arguments())
        check_files(connection, loads, second["files"], tmp_path, "second delivery")
        check_state(connection, contract, second, loads, tmp_path, "second delivery")
