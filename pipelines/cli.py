"""The `crm` command line: make demo data, run the nightly job, say what ran and where the results are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from datetime import UTC, date
from pathlib import Path

import click

from pipelines.settings import PROJECT_ROOT, Settings, load_settings


def _date(_ctx, _param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"{value!r} is not a date in the form YYYY-MM-DD") from error


def use_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at the settings' folder holding a copy of the project's dagster.yaml."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The analytical CRM: warehouse, scores and dashboards on your customer exports."""
    from pipelines.privacy import apply_umask, make_settings_private
    from pipelines.settings import SettingsError

    try:
        settings = load_settings()
    except SettingsError as error:
        raise click.ClickException(str(error)) from error
    apply_umask(settings)
    make_settings_private(settings)


@main.command("demo-data")
@click.option("--customers", type=click.IntRange(min=1), default=20_000, show_default=True, help="Buyers to simulate.")
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same bytes.")
@click.option("--as-of", "as_of", callback=_date, required=True, help="Cutoff date, YYYY-MM-DD.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Landing folder [landing_dir setting].")
@click.option("--truth", type=click.Path(path_type=Path), default=None, help="Truth folder [<out>/../truth].")
@click.option("--pure", is_flag=True, help="Switch every extra effect off: pure BG/NBD and Gamma-Gamma.")
@click.option(
    "--without", default="", help="Comma-separated effects to switch off: affinities,campaigns,support,tiers."
)
@click.option(
    "--sales-shape",
    type=click.Choice(["tables", "invoice-lines"]),
    default="tables",
    show_default=True,
    help="The ERP's sales as its tables (orders, lines, returns, customers, products) or as one invoice-line export.",
)
def demo_data(
    customers: int,
    seed: int,
    as_of: date,
    out: Path | None,
    truth: Path | None,
    pure: bool,
    without: str,
    sales_shape: str,
) -> None:
    """Write the synthetic retailer's exports (one folder per source system) and its truth."""
    from pipelines.demo_data import EFFECTS, generate

    off = {name.strip() for name in without.split(",") if name.strip()}
    unknown = off - EFFECTS
    if unknown:
        raise click.BadParameter(
            f"unknown effect(s) {sorted(unknown)}; known: {sorted(EFFECTS)}", param_hint="--without"
        )
    effects = frozenset() if pure else EFFECTS - off
    out = out or load_settings().landing_dir
    summary = generate(
        customers=customers, seed=seed, as_of=as_of, out=out, truth=truth, effects=effects, sales_shape=sales_shape
    )
    for name, rows in sorted(summary.rows.items()):
        click.echo(f"  {name:<45} {rows:>12,} rows")
    click.echo(f"Exports in {summary.out}; truth (never ingested) in {summary.truth}")


@main.command()
def contracts() -> None:
    """List the source contracts: built-in ones and yours (the contracts_dir setting)."""
    from pipelines.ingest.contracts import BUILT_IN_DIR, load_contracts

    settings = load_settings()
    found = load_contracts(BUILT_IN_DIR, settings.contracts_dir)
    click.echo(
        f"{'contract':<32} {'format':<8} {'files (glob under the landing zone)':<36} {'cols':>4} {'found':>5}  from"
    )
    for contract in found:
        origin = "built-in" if contract.path.is_relative_to(BUILT_IN_DIR) else str(contract.path)
        matching = len(contract.matching_files(settings.landing_dir))
        columns = len(contract.columns)
        click.echo(
            f"{contract.name:<32} {contract.format:<8} {contract.files:<36} {columns:>4} {matching:>5}  {origin}"
        )
    click.echo(f"\nLanding zone: {settings.landing_dir}; your contracts: {settings.contracts_dir} (docs/contracts.md)")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--contract",
    "contract_name",
    required=True,
    help="Contract name (erp__orders or erp/orders), or the path of a contract file you are writing.",
)
@click.option("--show", type=int, default=20, show_default=True, help="Quarantined rows to list.")
def validate(file: Path, contract_name: str, show: int) -> None:
    """Check FILE against a contract without loading it: what would load, be quarantined, and why."""
    import duckdb

    from pipelines.ingest import ledger
    from pipelines.ingest.contracts import BUILT_IN_DIR, ContractError, find_contract, load_contract
    from pipelines.ingest.expectations import validate_loads
    from pipelines.ingest.loader import create_raw_table, load_file

    settings = load_settings()
    try:
        as_path = Path(contract_name)
        contract = (
            load_contract(as_path.resolve())
            if as_path.suffix == ".yaml" and as_path.is_file()
            else find_contract(contract_name, BUILT_IN_DIR, settings.contracts_dir)
        )
    except ContractError as error:
        raise click.BadParameter(str(error), param_hint="--contract") from error
    connection = duckdb.connect()  # in memory: the warehouse is never touched
    ledger.ensure_tables(connection)
    create_raw_table(connection, contract)
    file = file.resolve()
    load = load_file(connection, contract, file, file.parent, "validate")
    click.echo(f"{file} under contract {contract.name} ({contract.path}):")
    if load.status == "refused":
        click.echo(f"  REFUSED: {load.message}")
        click.echo(f"  {load.rows_read:,} rows would be held back; nothing would load.")
        sys.exit(1)
    click.echo(
        f"  {load.rows_read:,} rows read: {load.rows_loaded:,} would load, "
        f"{load.rows_quarantined:,} would be quarantined, {load.rows_filtered:,} filtered out"
    )
    for reason, rows in load.filtered:
        click.echo(f"    {rows:>8,} x filtered: {reason}")
    for table, rows in load.tables:
        click.echo(f"  {table.replace('__', '/'):<28} would receive {rows:>10,} rows")
    reasons = connection.execute(
        "select column_name, regexp_replace(reason, '''.*''', '...') as why, count(*), min(row_number) "
        "from meta.quarantine group by all order by 3 desc"
    ).fetchall()
    for column, why, count, first in reasons:
        click.echo(f"    {count:>8,} x {column or '(record)'}: {why} (first at row {first})")
    rows = connection.execute(
        "select row_number, column_name, reason from meta.quarantine order by row_number limit ?", [show]
    ).fetchall()
    for row_number, column, reason in rows:
        click.echo(f"    row {row_number}: {column or '(record)'}: {reason}")
    if load.unknown_columns:
        click.echo(f"  columns not in the contract (would be kept in _extra): {', '.join(load.unknown_columns)}")
    validation = validate_loads(connection, contract, [load], "validate")
    click.echo(f"  expectations: {len(validation.outcomes)} checked, {len(validation.failures)} failed")
    for outcome in validation.failures:
        click.echo(f"    {outcome.describe()}")
    if validation.blocking_failures:
        sys.exit(1)


@main.command()
@click.option("--as-of", "as_of", callback=_date, default=None, help="Cutoff date [today in the settings' timezone].")
def run(as_of: date | None) -> None:
    """Run the whole nightly job now, in this process: ingest, dbt build, scores, publish."""
    from dagster import DagsterInstance

    from pipelines.diagnosis import explain_failed_run, explain_warnings
    from pipelines.ingest.contracts import BUILT_IN_DIR, ContractError, load_contracts
    from pipelines.progress import RunTally, progress_logger
    from pipelines.publish.guard import held_message, read_held
    from pipelines.publish.snapshot import current_snapshot
    from pipelines.resources import AS_OF_TAG
    from pipelines.transform.assets import night_parse_inputs
    from pipelines.transform.project import DBT_PROJECT_DIR, prepare_manifest

    settings = load_settings()
    as_of = as_of or settings.today()
    use_dagster_home(settings)
    click.echo(f"Nightly job as of {as_of}: landing {settings.landing_dir}, warehouse {settings.warehouse_path}")
    prepare_manifest(force=True, **night_parse_inputs(settings, as_of))
    tally = RunTally()
    try:
        contracts = load_contracts(BUILT_IN_DIR, settings.contracts_dir)
    except ContractError as error:
        raise click.ClickException(f"{error}\nNothing ran: fix the contract (see docs/contracts.md).") from error
    # Importing the definitions builds them from the contracts: only once the contracts are known to load.
    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.runs import fail_dead_runs, process_tags

    with DagsterInstance.get() as instance:
        for run_id in fail_dead_runs(instance, NIGHTLY_JOB):
            click.echo(f"Run {run_id} was left unfinished by a process that is gone (killed?): marked failed.")

    defs = build_definitions(settings, loggers={"console": progress_logger(tally, stream=sys.stdout)})
    job = defs.resolve_job_def(NIGHTLY_JOB)
    # What the steps print (dbt's own log, mostly) goes to a file; the console shows progress lines.
    step_log = settings.dagster_home / "logs" / "crm-run-latest.log"
    step_log.parent.mkdir(parents=True, exist_ok=True)
    with DagsterInstance.get() as instance, step_log.open("w", encoding="utf-8") as log, redirect_stdout(log):
        result = job.execute_in_process(
            instance=instance,
            tags={AS_OF_TAG: as_of.isoformat(), **process_tags()},
            # Dagster starts the loggers the run config names: ours replaces the verbose default console.
            run_config={"loggers": {"console": {}}},
            raise_on_error=False,
        )
    click.echo("")
    click.echo(f"Run {result.run_id}: {'succeeded' if result.success else 'FAILED'} (step output: {step_log})")
    without_files = []
    for key, figures in sorted(tally.ingest.items()):
        if not any(figures.get(name) for name in ("files_loaded", "files_unchanged", "files_refused")):
            without_files.append(key.removeprefix("raw/"))
            continue
        notes = [
            f"{figures[name]:,} {label}"
            for name, label in (
                ("rows_quarantined", "rows quarantined"),
                ("rows_filtered", "rows filtered"),
                ("files_unchanged", "files unchanged"),
                ("files_refused", "files REFUSED"),
            )
            if figures.get(name)
        ]
        click.echo(f"  {key:<32} {figures['rows_loaded']:>12,} rows loaded{'; ' + ', '.join(notes) if notes else ''}")
        fed = {table: rows for table, rows in (figures.get("rows_written_by_table") or {}).items()}
        if set(fed) - {key.removeprefix("raw/").replace("/", "__")}:
            tables = ", ".join(f"{table.replace('__', '/')} {rows:,}" for table, rows in fed.items())
            click.echo(f"  {'':<32} rows written: {tables}")
    if without_files:
        click.echo(f"  no files (empty tables): {', '.join(without_files)}")
    dbt_models = [key for key in tally.materialized if not key.startswith(("raw/", "ml/", "published"))]
    click.echo(
        f"  dbt: {len(dbt_models)} models built; "
        f"tests and checks: {tally.checks_passed} passed, {len(tally.checks_failed)} failed"
    )
    published = current_snapshot(settings.published_dir)
    held = read_held(settings.published_dir)
    if held and held["run_id"] == result.run_id:
        click.echo("The new snapshot is held back by the publish guard:")
        click.echo(f"  {held_message(held, held['guard_factor'])}")
        sys.exit(1)
    # dagster-dbt names each invocation's target folder <step>-<run id prefix>-<random>.
    dbt_targets = sorted((DBT_PROJECT_DIR / "target").glob(f"*-{result.run_id[:7]}-*"))
    if result.success and published:
        click.echo(f"Published snapshot (what the dashboards read): {published['path']}")
        warnings = explain_warnings(settings.warehouse_path, dbt_targets)
        if warnings:
            click.echo("Warnings (the run published; docs/failures.md says what only warns):")
        for warning in warnings:
            click.echo(f"  - {warning}")
    else:
        click.echo(
            f"Failed steps: {', '.join(tally.failed_steps) or 'none'}; "
            f"failed checks: {len(tally.checks_failed)}; nothing new was published."
        )
        causes = explain_failed_run(
            result.all_events,
            settings.warehouse_path,
            {contract.name: str(contract.path) for contract in contracts},
            dbt_targets,
        )
        click.echo("Why the run failed:" if causes else "No cause was recorded: see the Dagster run log.")
        for cause in causes:
            click.echo(f"  - {cause}")
        sys.exit(1)


@main.command()
@click.argument("file")
def unload(file: str) -> None:
    """Take FILE's rows back out of the warehouse (the next run rebuilds without them).

    FILE is its path in the landing zone (erp/orders_2026-06.csv) or on disk. The same content is not loaded again
    while it stays in the landing zone; a corrected file under the same name loads as usual.
    """
    from pipelines.ingest.unload import UnloadError, unload_file
    from pipelines.resources import Warehouse

    settings = load_settings()
    try:
        with Warehouse.from_settings(settings).connect() as connection:
            result = unload_file(connection, settings.landing_dir, file)
    except UnloadError as error:
        raise click.ClickException(str(error)) from error
    click.echo(result.describe())
    click.echo("The next run (`crm run`) rebuilds the warehouse and publishes without it.")


@main.command()
@click.option("--as-of", "as_of", callback=_date, default=None, help="Cutoff date [today in the settings' timezone].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_of: date | None, as_json: bool) -> None:
    """Data readiness: what the landing zone holds and which capabilities it supports, and why not."""
    from pipelines.ingest.contracts import BUILT_IN_DIR, ContractError, load_contracts
    from pipelines.readiness import format_report, landing_zone_report

    settings = load_settings()
    try:
        contracts = load_contracts(BUILT_IN_DIR, settings.contracts_dir)
    except ContractError as error:
        raise click.ClickException(f"{error}\nFix the contract (see docs/contracts.md).") from error
    report = landing_zone_report(settings.landing_dir, contracts, as_of or settings.today(), settings)
    click.echo(json.dumps(report.as_dict(), indent=2, default=str) if as_json else format_report(report))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Where the warehouse and the published snapshot are, and how the last run went."""
    from datetime import datetime

    from dagster import DagsterInstance

    from pipelines.ingest.contracts import BUILT_IN_DIR, ContractError, load_contracts
    from pipelines.ingest.freshness import source_freshness
    from pipelines.publish.changes import what_changed
    from pipelines.publish.snapshot import current_snapshot
    from pipelines.runs import NIGHTLY_JOB, fail_dead_runs, recent_runs

    settings = load_settings()
    use_dagster_home(settings)
    with DagsterInstance.get() as instance:
        fail_dead_runs(instance, NIGHTLY_JOB)
        last_run = next(iter(recent_runs(instance, NIGHTLY_JOB, limit=1)), None)
    published = current_snapshot(settings.published_dir)
    try:
        contracts = load_contracts(BUILT_IN_DIR, settings.contracts_dir)
    except ContractError as error:
        raise click.ClickException(f"{error}\nFix the contract (see docs/contracts.md).") from error
    freshness = source_freshness(contracts, settings.landing_dir, datetime.now(UTC))
    report = {
        "what_changed": what_changed(settings.published_dir),
        "warehouse": str(settings.warehouse_path),
        "published_snapshot": published["path"] if published else None,
        "published_as_of": published["as_of"] if published else None,
        "last_run": last_run,
        "sources": [
            {"source": item.source_table, "cadence": item.cadence, "late": item.late, "message": item.message}
            for item in freshness
        ],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"Warehouse:          {report['warehouse']}")
    click.echo(f"Published snapshot: {report['published_snapshot'] or 'none yet (run `crm run`)'}")
    for sentence in report["what_changed"]:
        click.echo(f"  {sentence}")
    if last_run:
        click.echo(f"Last run:           {last_run['run_id']} as of {last_run['as_of']}: {last_run['outcome']}")
        click.echo(f"                    started {last_run['started']}, finished {last_run['finished']}")
    else:
        click.echo("Last run:           none")
    late = [item for item in freshness if item.late]
    click.echo(f"Sources:            {len(freshness) - len(late)} on time, {len(late)} late")
    for item in freshness:
        if item.files or item.late:
            click.echo(f"  {'LATE' if item.late else 'ok':<5} {item.message}")


@main.command()
@click.option("--accept", "accept_run", default=None, help="Publish the snapshot the guard held back for this run.")
@click.option("--rollback", "roll_back", is_flag=True, help="Make the previously published snapshot current again.")
def publish(accept_run: str | None, roll_back: bool) -> None:
    """Accept a snapshot the publish guard held back, or go back to the previous one."""
    from pipelines.publish.guard import PublishError, accept_held, rollback

    settings = load_settings()
    if bool(accept_run) == roll_back:
        raise click.UsageError("give either --accept RUN or --rollback")
    try:
        pointer = accept_held(settings.published_dir, accept_run) if accept_run else rollback(settings.published_dir)
    except PublishError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Current snapshot: {pointer['snapshot']} (run {pointer['run_id']}, as of {pointer['as_of']})")


@main.command()
@click.option("--truth", "truth_dir", type=click.Path(path_type=Path), help="Truth folder of `crm demo-data`.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate(truth_dir: Path | None, as_json: bool) -> None:
    """Demo data only: judge the published scores against the generator's truth, beside baseline and oracle, and
    churn re-run without the engagement features (web sessions, email and campaign touches)."""
    from pipelines.ml.evaluation import evaluate as evaluate_models
    from pipelines.publish.snapshot import current_snapshot

    settings = load_settings()
    truth_dir = truth_dir or settings.truth_dir
    published = current_snapshot(settings.published_dir)
    if not published:
        raise click.ClickException("nothing is published yet: run `crm run` first")
    if not (truth_dir / "people.parquet").exists():
        raise click.ClickException(f"{truth_dir} holds no demo truth (people.parquet); only demo data can be judged")
    as_of = date.fromisoformat(published["as_of"])
    figures = evaluate_models(
        Path(published["path"]), truth_dir, as_of, settings.churn_window_days, settings.churn_training_customers
    )
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    clv, churn = figures["clv"], figures["churn"]
    click.echo(f"Scores as of {as_of} against the demo truth ({clv['actual']['customers']:,} customers)")
    columns = ("model", "baseline", "history_ceiling", "oracle")
    click.echo(f"{'':44}{'model':>10}{'baseline':>10}{'best from':>10}{'oracle':>10}")
    click.echo(f"{'':44}{'':>10}{'':>10}{'history':>10}{'':>10}")
    rows = (
        ("CLV: mean absolute error of 6-month spend", clv, "mae_spend_6m", "{:10.2f}"),
        ("CLV: rank correlation with 6-month spend", clv, "spearman_spend_6m", "{:10.3f}"),
        (f"Churn: AUC of no purchase in {settings.churn_window_days} days", churn, "auc", "{:10.3f}"),
    )
    for label, model, figure, style in rows:
        values = "".join(style.format(model[name][figure]) if model[name][figure] is not None else f"{'-':>10}"
                         for name in columns)  # fmt: skip
        click.echo(f"{label:44}{values}")
    without = churn["without_engagement"]
    if without["auc"] is not None:
        click.echo(f"{'Churn without engagement features: AUC':44}{without['auc']:10.3f}")
    click.echo(
        "best from history: BG/NBD and Gamma-Gamma with the generator's true parameters, given each customer's "
        "purchases;\noracle: each customer's true rate and whether they were still active (no model can know)."
    )

    def auc(figure: float | None) -> str:
        return f"{figure:.3f}" if figure is not None else "-"

    published = churn["model"]
    click.echo(
        "\nChurn out of time on the run's own test cutoff (AUC; whose scores the run publishes):\n"
        f"  with engagement    {auc(published['out_of_time_auc'])} ({published['score_source']})\n"
        f"  without engagement {auc(without['out_of_time_auc'])} ({without['score_source']})\n"
        f"  recency baseline   {auc(published['baseline_out_of_time_auc'])}\n"
        f"engagement features: {', '.join(without['features_left_out']) or 'none'}"
    )


def _sizes(_ctx, _param, values: tuple[str, ...]) -> tuple[int, ...]:
    """Every --customers value, each one size or several separated by spaces or commas ("100000 1000000")."""
    try:
        sizes = tuple(int(size) for value in values for size in value.replace(",", " ").split())
    except ValueError as error:
        raise click.BadParameter(f"{' '.join(values)!r}: sizes are whole numbers of customers") from error
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("give at least one size of 1 customer or more")
    return sizes


@main.command()
@click.option(
    "--customers", multiple=True, required=True, callback=_sizes,
    help="Customers to simulate; repeat (or list them: \"100000 1000000\") for several sizes.",
)  # fmt: skip
@click.option("--as-of", "as_of", callback=_date, default="2026-06-30", show_default=True, help="Cutoff date.")
@click.option("--sales-shape", type=click.Choice(["tables", "invoice-lines"]), default="tables", show_default=True)
@click.option("--keep", is_flag=True, help="Keep each size's exports, warehouse and snapshots.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None, help="[a temporary folder]")
@click.option("--skip-pages", is_flag=True, help="Do not time the dashboard pages.")
@click.option("--skip-incremental", is_flag=True, help="Do not time the incremental night.")
@click.option(
    "--skip-models-alone", is_flag=True,
    help="Do not time the night's dbt models again one at a time (the growth of each model then comes from the "
    "night, where two run at once).",
)  # fmt: skip
@click.option(
    "--refit-days", type=click.IntRange(min=1), default=1, show_default=True,
    help="model_refit_days of the incremental night and the night before it (1: every model fits every night).",
)  # fmt: skip
def bench(
    customers: tuple[int, ...],
    as_of: date,
    sales_shape: str,
    keep: bool,
    workdir: Path | None,
    skip_pages: bool,
    skip_incremental: bool,
    refit_days: int,
    skip_models_alone: bool,
) -> None:
    """Time the generator, DuckDB alone and the night (stage by stage) at each size, the CLV fit beside the
    lifetimes route and each dbt model again alone, and at the largest size the incremental night and the dashboard
    pages (docs/benchmarks.md)."""
    from pipelines.bench import BenchOptions, run_bench

    options = BenchOptions(
        customers, as_of, sales_shape, keep, workdir, skip_pages, skip_incremental, refit_days, skip_models_alone
    )
    try:
        sys.exit(run_bench(options, echo=click.echo))
    except FileExistsError as error:
        raise click.ClickException(str(error)) from error


@main.command()
def ui() -> None:
    """Start the Dagster webserver and daemon: schedules and sensors run while it is up."""
    settings = load_settings()
    use_dagster_home(settings)
    dagster = Path(sys.executable).parent / "dagster"
    os.execv(
        str(dagster), [str(dagster), "dev", "-m", "pipelines.definitions", "--working-directory", str(PROJECT_ROOT)]
    )


@main.command()
@click.option("--port", type=int, default=8501, show_default=True)
@click.option(
    "--address", default="localhost", show_default=True, help="Address to listen on (localhost: this machine only)."
)
def dashboard(port: int, address: str) -> None:
    """Start the Streamlit dashboards on the last published snapshot.

    Users sign in (`crm users add`). With no users configured, the dashboards listen on this machine only and
    everyone there is admin; another --address is refused until users exist.
    """
    from pipelines.users import UsersError, is_loopback, no_users_message, users

    settings = load_settings()
    try:
        configured = users(settings.users_file)
    except UsersError as error:
        raise click.ClickException(str(error)) from error
    if not configured:
        if not is_loopback(address):
            raise click.ClickException(no_users_message())
        click.echo(
            "No users are configured: anyone on this machine is admin. "
            "Add users: crm users add NAME --role ROLE (docs/dashboards.md)."
        )
    app = PROJECT_ROOT / "dashboards" / "app.py"
    streamlit = Path(sys.executable).parent / "streamlit"
    command = [str(streamlit), "run", str(app), "--server.port", str(port), "--server.address", address]
    command += ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    command += ["--client.showErrorDetails", "none"]
    raise SystemExit(subprocess.call(command))


@main.group()
def users() -> None:
    """Who may sign in to the dashboards, and with which role (the users_file setting)."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, help="executive, analyst, marketing, service or admin.")
@click.option("--password-stdin", "password_stdin", is_flag=True, help="Read the password from standard input.")
def users_add(name: str, role: str, password_stdin: bool) -> None:
    """Add user NAME with ROLE, or give an existing user a new role and password."""
    from pipelines.users import UsersError, add_user, check_name, check_password, check_role

    settings = load_settings()
    try:
        name = check_name(name)
        check_role(role)
    except UsersError as error:
        raise click.BadParameter(str(error)) from error
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
        existed = add_user(settings.users_file, name, role, password)
    except UsersError as error:
        raise click.ClickException(str(error)) from error
    if existed:
        click.echo(f"User {name} existed: their role is now {role} and their password the new one.")
    else:
        click.echo(f"User {name} added with role {role}.")
    click.echo(f"Users file: {settings.users_file}")


@users.command("list")
def users_list() -> None:
    """The users and their roles (never their password hashes)."""
    from pipelines.users import UsersError, list_users

    settings = load_settings()
    try:
        listed = list_users(settings.users_file)
    except UsersError as error:
        raise click.ClickException(str(error)) from error
    if not listed:
        click.echo(f"No users in {settings.users_file}: the dashboards listen on this machine only.")
    width = max((len(name) for name, _ in listed), default=0)
    for name, role in listed:
        click.echo(f"{name:<{width}}  {role or '(no role)'}")


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove user NAME: they can no longer sign in (a session already open lasts until it ends)."""
    from pipelines.users import UsersError, remove_user

    settings = load_settings()
    try:
        remove_user(settings.users_file, name)
    except UsersError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"User {name.lower()} removed.")


@main.group()
def campaign() -> None:
    """Plan a targeted campaign with a random control group, export its consented targets, read its results."""


@campaign.command("create")
@click.option("--name", required=True, help="The campaign's name.")
@click.option("--channel", required=True, type=click.Choice(["email", "sms", "phone"]))
@click.option("--id", "campaign_id", default=None, help="Campaign id [PLN-<start>-<name>].")
@click.option("--objective", default=None, help="e.g. winback, cross_sell, loyalty, seasonal.")
@click.option("--offer", default=None, help="What the campaign offers (a product category).")
@click.option("--start", "start_date", callback=_date, default=None, help="First day [the snapshot's as-of date].")
@click.option("--end", "end_date", callback=_date, default=None, help="Last day [four weeks from the start].")
@click.option("--segment", "segments", multiple=True, help="RFM segment (repeat for several).")
@click.option("--behaviour-segment", "behaviour_segments", multiple=True, help="Behaviour cluster name.")
@click.option("--risk-band", "churn_risk_bands", multiple=True, help="Churn risk band: low, medium, high.")
@click.option("--churn-min", type=float, default=None, help="Churn probability at least.")
@click.option("--churn-max", type=float, default=None, help="Churn probability at most.")
@click.option("--clv-min", type=float, default=None, help="CLV at least (reporting currency).")
@click.option("--clv-max", type=float, default=None, help="CLV at most.")
@click.option("--p-alive-min", type=float, default=None, help="P(alive) at least.")
@click.option("--p-alive-max", type=float, default=None, help="P(alive) at most.")
@click.option("--tier", "tiers", multiple=True, help="Loyalty tier: bronze, silver, gold, platinum.")
@click.option("--tier-movement", "tier_movements", multiple=True, help="e.g. 'downgrade risk', 'upgrade candidate'.")
@click.option(
    "--offer-item", default=None, help="Only customers whose next best offers include this item (id or name)."
)
@click.option("--offer-rank", "offer_max_rank", type=click.IntRange(min=1), default=None, help="... ranked this high.")
@click.option("--country", "countries", multiple=True, help="Country code, e.g. ES.")
@click.option("--customer-type", "customer_types", multiple=True, help="customer or prospect.")
@click.option("--purchased/--never-purchased", "has_purchased", default=None, help="Has bought before, or never.")
@click.option("--preferred-channel", "preferred_channels", multiple=True, help="The channel the customer uses most.")
@click.option(
    "--rank-by",
    type=click.Choice(["churn_probability", "clv", "p_alive", "offer_score"]),
    default=None,
    help="Rank the audience by this score (kept as the members' targeting_score).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Keep the top N by --rank-by.")
@click.option("--control-share", type=float, default=None, help="Share held out as control [campaign_control_share].")
@click.option("--seed", type=int, default=None, help="Seed of the control draw [a random one, printed].")
@click.option("--dry-run", is_flag=True, help="Show the plan (size, exclusions, expected value); save nothing.")
def campaign_create(
    churn_min, churn_max, clv_min, clv_max, p_alive_min, p_alive_max, seed: int | None, dry_run: bool, **filters
) -> None:
    """Plan a campaign on the published snapshot and save it into the landing zone: the next run ingests it."""
    from pipelines.campaigns import Audience, CampaignError, is_saved, open_published, plan_campaign, save_campaign

    settings = load_settings()
    try:
        audience = Audience(
            churn_probability=(churn_min, churn_max),
            clv=(clv_min, clv_max),
            p_alive=(p_alive_min, p_alive_max),
            **filters,
        )
        connection, _pointer = open_published(settings.published_dir)
        with connection:
            plan = plan_campaign(connection, audience, settings, seed)
        for line in plan.summary():
            click.echo(line)
        if is_saved(settings.landing_dir, plan.campaign_id):
            click.echo(f"Note: {plan.campaign_id} is saved in the landing zone already: give another --id or --name")
        if dry_run:
            click.echo("Dry run: nothing saved.")
            return
        paths = save_campaign(plan, settings.landing_dir)
    except CampaignError as error:
        raise click.ClickException(str(error)) from error
    for path in paths:
        click.echo(f"Saved {path}")
    click.echo("The next run ingests the campaign and its members; export the targets with `crm campaign export`.")


@campaign.command("export")
@click.argument("campaign_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write.")
def campaign_export(campaign_id: str, out: Path) -> None:
    """Write CAMPAIGN_ID's targets who may be contacted over its channel, with their contact details (CSV)."""
    from pipelines.campaigns import LEFT_OUT, CampaignError, export_targets, open_published
    from pipelines.publish.contacts import current_contacts

    settings = load_settings()
    try:
        connection, _pointer = open_published(settings.published_dir)
        with connection:
            result = export_targets(
                connection, campaign_id, current_contacts(settings.published_dir), out, settings.landing_dir
            )
    except CampaignError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{result.rows:,} targets of {result.campaign_id} written to {result.path}")
    for code, count in result.left_out.items():
        click.echo(f"  left out {count:>9,}  {LEFT_OUT[code]}")


@campaign.command("report")
@click.argument("campaign_id", required=False)
def campaign_report(campaign_id: str | None) -> None:
    """Each campaign's conversion lift against its control group, with the 95% interval."""
    from pipelines.campaigns import CampaignError, campaign_results, open_published, result_lines

    settings = load_settings()
    try:
        connection, pointer = open_published(settings.published_dir)
        with connection:
            results = campaign_results(connection, campaign_id)
    except CampaignError as error:
        raise click.ClickException(str(error)) from error
    if results is None:
        raise click.ClickException(
            f"the snapshot as of {pointer['as_of']} holds no campaign results (marts.rpt_campaign_results)"
        )
    if results.is_empty():
        click.echo(f"No results for {campaign_id}." if campaign_id else "No campaign results yet.")
        return
    click.echo(f"Campaign results, snapshot as of {pointer['as_of']} (conversion: bought in the attribution window)")
    for line in result_lines(results):
        click.echo(line)


if __name__ == "__main__":
    main()
