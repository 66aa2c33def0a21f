"""ml.model_runs: one row per model fit or scoring, with its parameters and figures, read by the dashboards."""

from __future__ import annotations

import json
from datetime import date, datetime

import duckdb

ML_SCHEMA = "ml"


def ensure_model_runs(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(f"create schema if not exists {ML_SCHEMA}")
    connection.execute(
        f"""create table if not exists {ML_SCHEMA}.model_runs (
            model_run_id varchar primary key, model varchar, as_of date, run_id varchar, parameters json,
            metrics json, rows_used bigint, started_at timestamp, finished_at timestamp)"""
    )


def record_model_run(
    connection: duckdb.DuckDBPyConnection,
    *,
    model: str,
    as_of: date,
    run_id: str,
    parameters: dict,
    metrics: dict,
    rows_used: int,
    started_at: datetime,
) -> str:
    """Write a model run and return its id (``<model>-<as_of>-<dagster run id prefix>``)."""
    ensure_model_runs(connection)
    model_run_id = f"{model}-{as_of.isoformat()}-{run_id[:8]}"
    connection.execute(f"delete from {ML_SCHEMA}.model_runs where model_run_id = ?", [model_run_id])
    connection.execute(
        f"insert into {ML_SCHEMA}.model_runs values (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            model_run_id,
            model,
            as_of,
            run_id,
            json.dumps(parameters, sort_keys=True, default=str),
            json.dumps(metrics, sort_keys=True, default=str),
            rows_used,
            started_at,
        ],
    )
    return model_run_id
