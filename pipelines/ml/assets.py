"""ML assets: read marts as of the run's cutoff, call a pure model from models_ml, write scores to schema ml."""

from collections.abc import Callable
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from models_ml import score_rfm, summarise_segments
from pipelines.ml.model_runs import ML_SCHEMA, record_model_run
from pipelines.resources import Warehouse, as_of_date

RFM_INPUTS_SQL = """
select
    customer_id,
    days_since_last_order,
    rfm_window_orders as frequency,
    rfm_window_net_revenue as monetary
from marts.dim_customers
where has_purchased
"""


def build_ml_assets(default_as_of: Callable[[], date], rfm_window_days: int) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=dg.AssetKey(["ml", "rfm_scores"]),
        deps=[dg.AssetKey(["marts", "dim_customers"])],
        group_name="ml",
        kinds={"python", "duckdb"},
        description="RFM quintile scores and named segment of every customer who has ordered (ml.rfm_scores), "
        "with segment sizes and value (ml.rfm_segments).",
    )
    def rfm_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        as_of, started_at = as_of_date(context, default_as_of()), datetime.now(UTC).replace(tzinfo=None)
        with warehouse.connect() as connection:
            customers = connection.sql(RFM_INPUTS_SQL).pl()
            scored = score_rfm(customers)
            segments = summarise_segments(scored)
            model_run_id = record_model_run(
                connection,
                model="rfm",
                as_of=as_of,
                run_id=context.run.run_id,
                parameters={"rfm_window_days": rfm_window_days, "method": "quintiles of rank, ties at the lowest"},
                metrics={"segments": segments.height},
                rows_used=customers.height,
                started_at=started_at,
            )
            scored = scored.with_columns(as_of=pl.lit(as_of), model_run_id=pl.lit(model_run_id))
            segments = segments.with_columns(as_of=pl.lit(as_of), model_run_id=pl.lit(model_run_id))
            for table, frame in (("rfm_scores", scored), ("rfm_segments", segments)):
                connection.register("_frame", frame.to_arrow())
                connection.execute(f"create table if not exists {ML_SCHEMA}.{table} as select * from _frame limit 0")
                connection.execute(f"delete from {ML_SCHEMA}.{table} where as_of = ?", [as_of])
                connection.execute(f"insert into {ML_SCHEMA}.{table} by name select * from _frame")
                connection.unregister("_frame")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": scored.height,
                "model_run_id": model_run_id,
                "as_of": as_of.isoformat(),
                "customers_by_segment": dg.MetadataValue.json(
                    dict(segments.select("segment", "customers").iter_rows())
                ),
            }
        )

    return [rfm_scores]
