from datetime import date

import polars as pl
import pytest

from models_ml import SEGMENTS, run_rfm, score_rfm
from models_ml.rfm import SEGMENT_BY_CELL


def customers(n: int = 100) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "days_since_last_order": list(range(n)),
            "frequency": list(range(n, 0, -1)),
            "monetary": [float(n - i) * 10 for i in range(n)],
        }
    )


def test_distinct_values_split_into_five_equal_quintiles():
    scored = score_rfm(customers(100))
    for column in ("recency_score", "frequency_score", "monetary_score"):
        assert scored[column].value_counts().sort(column)["count"].to_list() == [20] * 5


def test_the_most_recent_frequent_big_spenders_are_champions_and_the_opposite_lost():
    scored = score_rfm(customers(100)).sort("customer_id")
    assert scored.row(0, named=True)["rfm_cell"] == "555"
    assert scored.row(0, named=True)["segment"] == "champions"
    assert scored.row(99, named=True)["rfm_cell"] == "111"
    assert scored.row(99, named=True)["segment"] == "lost"


def test_equal_values_always_share_a_score():
    frame = customers(100).with_columns(frequency=pl.when(pl.col("frequency") <= 60).then(1).otherwise(2))
    scored = score_rfm(frame)
    assert scored.group_by("frequency").agg(pl.col("frequency_score").n_unique())["frequency_score"].max() == 1


def test_every_recency_frequency_cell_maps_to_one_named_segment():
    assert sorted(SEGMENT_BY_CELL) == [(r, f) for r in range(1, 6) for f in range(1, 6)]
    assert set(SEGMENT_BY_CELL.values()) == set(SEGMENTS)
    assert len(SEGMENTS) == 11


def test_the_run_writes_the_scores_and_records_the_window_it_read():
    output = run_rfm(customers(100), as_of=date(2026, 6, 30), window_days=730)
    assert list(output.tables) == ["rfm_scores"]
    assert output.tables["rfm_scores"].equals(score_rfm(customers(100)))
    assert output.verdict.score_source == "model" and output.verdict.beats_baseline is None
    assert output.verdict.metrics == {"segments": output.tables["rfm_scores"]["segment"].n_unique()}
    assert (output.training_from, output.training_to) == (date(2024, 6, 30), date(2026, 6, 30))
    assert output.rows_used == 100 and output.parameters["rfm_window_days"] == 730


def test_a_customer_who_never_ordered_is_refused_with_what_to_do():
    frame = customers(10).with_columns(days_since_last_order=pl.when(pl.col("frequency") == 1).then(None).otherwise(1))
    with pytest.raises(ValueError, match="days_since_last_order has 1 null.*score only customers who have ordered"):
        score_rfm(frame)


@pytest.mark.parametrize("column", ["customer_id", "days_since_last_order", "frequency", "monetary"])
def test_a_missing_column_is_named(column):
    with pytest.raises(ValueError, match=column):
        score_rfm(customers(10).drop(column))


def test_duplicate_customers_are_refused():
    frame = pl.concat([customers(10), customers(10).head(1)])
    with pytest.raises(ValueError, match="unique.*C0000"):
        score_rfm(frame)


def test_customers_who_bought_once_score_frequency_one_so_recent_ones_are_new_customers():
    frame = customers(100).with_columns(
        frequency=pl.when(pl.int_range(pl.len()) % 2 == 0).then(1).otherwise(pl.int_range(pl.len()) + 2)
    )
    scored = score_rfm(frame)
    assert scored.filter(pl.col("frequency") == 1)["frequency_score"].unique().to_list() == [1]
    recent_single = scored.filter((pl.col("frequency") == 1) & (pl.col("recency_score") == 5))
    assert recent_single.height == 10
    assert set(recent_single["segment"]) == {"new customers"}
