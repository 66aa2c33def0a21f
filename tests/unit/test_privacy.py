"""Private files: what the pipeline creates after apply_umask is its owner's only; make_private closes the rest."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from pipelines.privacy import make_private, make_settings_private
from pipelines.settings import PROJECT_ROOT, load_settings

CREATE_AFTER_UMASK = """
import sys
from pathlib import Path
import duckdb
from pipelines.privacy import apply_umask
from pipelines.settings import load_settings

root = Path(sys.argv[1])
replaced = apply_umask(load_settings())
print(oct(replaced) if replaced is not None else "None")
(root / "published").mkdir()
(root / "published" / "current.json").write_text("{}")
with duckdb.connect(str(root / "published" / "crm.duckdb")) as connection:
    connection.execute("create table t as select 1 as x")
connection = duckdb.connect(str(root / "published" / "crm.duckdb"))
connection.execute("copy t to '" + str(root / "export.csv") + "'")
"""


def _create_in_a_fresh_process(root: Path, private_files: str) -> str:
    environ = {**os.environ, "CRM_PRIVATE_FILES": private_files}
    done = subprocess.run(
        [sys.executable, "-c", f"import os; os.umask(0o022)\n{CREATE_AFTER_UMASK}", str(root)],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_folders_created_after_apply_umask_are_their_owners_only(tmp_path: Path):
    replaced = _create_in_a_fresh_process(tmp_path, "true")
    assert replaced == "0o22"
    assert _mode(tmp_path / "published") == 0o700
    for name in ("published/current.json", "published/crm.duckdb", "export.csv"):
        assert _mode(tmp_path / name) == 0o600, name


def test_with_private_files_off_the_umask_is_left_alone(tmp_path: Path):
    assert _create_in_a_fresh_process(tmp_path, "false") == "None"
    assert _mode(tmp_path / "published" / "current.json") == 0o644
    assert _mode(tmp_path / "published") == 0o755


def test_make_private_closes_folders_and_files_made_before_and_leaves_links_alone(tmp_path: Path):
    folder = tmp_path / "warehouse"
    (folder / "old").mkdir(parents=True)
    (folder / "crm.duckdb").write_text("x")
    (folder / "old" / "crm.duckdb.wal").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    for path in (folder, folder / "old"):
        path.chmod(0o755)
    for path in (folder / "crm.duckdb", folder / "old" / "crm.duckdb.wal", outside):
        path.chmod(0o644)
    (folder / "link").symlink_to(outside)
    changed = make_private(folder)
    assert set(changed) == {folder, folder / "old", folder / "crm.duckdb", folder / "old" / "crm.duckdb.wal"}
    assert (_mode(folder), _mode(folder / "old")) == (0o700, 0o700)
    assert (_mode(folder / "crm.duckdb"), _mode(folder / "old" / "crm.duckdb.wal")) == (0o600, 0o600)
    assert _mode(outside) == 0o644  # a link's target is not ours to change
    assert make_private(folder) == []  # nothing left to do
    assert make_private(tmp_path / "missing") == []


def test_make_settings_private_covers_the_warehouse_snapshots_and_dagster_home_but_not_the_landing_zone(tmp_path):
    environ = {
        "CRM_LANDING_DIR": str(tmp_path / "landing"),
        "CRM_WAREHOUSE_PATH": str(tmp_path / "warehouse" / "crm.duckdb"),
        "CRM_PUBLISHED_DIR": str(tmp_path / "published"),
        "CRM_DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    for name in ("landing", "warehouse", "published", "dagster"):
        (tmp_path / name).mkdir(mode=0o755)
        (tmp_path / name).chmod(0o755)
    make_settings_private(load_settings(environ))
    assert {name: _mode(tmp_path / name) for name in ("landing", "warehouse", "published", "dagster")} == {
        "landing": 0o755,
        "warehouse": 0o700,
        "published": 0o700,
        "dagster": 0o700,
    }
    (tmp_path / "published").chmod(0o755)
    assert make_settings_private(load_settings({**environ, "CRM_PRIVATE_FILES": "false"})) == []
    assert _mode(tmp_path / "published") == 0o755
