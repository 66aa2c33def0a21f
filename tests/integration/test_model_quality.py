"""The acceptance figures of the scoring models, on generated data, against the truth of the 6 months after the
cutoff: every model beside its baseline, the best any model can do from purchase history (the generator's true
population parameters conditioned on each customer's history), and the oracle (each customer's true rate and
whether they were still active). Slow: a 20,000-customer world through the whole nightly run.

The oracle knows what no model can observe, whether a customer has silently left; the figures printed here
show how far the best history-based prediction stands from it (see the closing note of issue 5).
"""

import json

import pytest

from pipelines.ml.evaluation import evaluate
from pipelines.publish.snapshot import current_snapshot
from pipelines.settings import load_settings
from tests.conftest import AS_OF, run_nightly, world_environ

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMERS = 20_000
SEED = 42


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    from pipelines.demo_data import generate

    root = tmp_path_factory.mktemp("quality")
    generate(customers=CUSTOMERS, seed=SEED, as_of=AS_OF, out=root / "landing", truth=root / "truth")
    result = run_nightly(world_environ(root), AS_OF)
    assert result.success
    pointer = current_snapshot(root / "published")
    measured = evaluate(pointer["path"], root / "truth", AS_OF, load_settings().churn_window_days)
    print(json.dumps(measured, indent=2))
    return measured


def test_clv_error_is_at_least_15_percent_below_the_baseline(figures):
    clv = figures["clv"]
    assert clv["model"]["mae_spend_6m"] <= 0.85 * clv["baseline"]["mae_spend_6m"]
    assert clv["model"]["spearman_spend_6m"] > clv["baseline"]["spearman_spend_6m"]


def test_clv_ranks_customers_as_well_as_the_true_parameters_allow(figures):
    clv = figures["clv"]
    assert clv["model"]["spearman_spend_6m"] >= clv["history_ceiling"]["spearman_spend_6m"] - 0.01


def test_churn_beats_recency_and_reaches_what_the_history_allows(figures):
    churn = figures["churn"]
    assert churn["model"]["auc"] > churn["baseline"]["auc"]
    assert churn["model"]["auc"] >= churn["history_ceiling"]["auc"] - 0.01


def test_on_pure_bgnbd_data_the_fits_recover_the_generators_parameters(tmp_path_factory):
    """With every extra effect off, purchases follow BG/NBD and order values Gamma-Gamma exactly (50,000
    customers). The nightly BG/NBD fit in ml.model_runs recovers r, alpha, a and b within 10%. The generator's
    Gamma-Gamma describes order values before returns, while the nightly spend model reads net values (7% of
    lines are returned, which adds spread the generator's model does not have), so the spend parameters are
    checked on the published orders' gross amounts, through the same summary SQL and fit."""
    import duckdb

    from models_ml import fit_clv
    from pipelines.demo_data import generate
    from pipelines.ml.features import clv_summary

    root = tmp_path_factory.mktemp("pure")
    generate(customers=50_000, seed=SEED, as_of=AS_OF, out=root / "landing", truth=root / "truth", effects=frozenset())
    assert run_nightly(world_environ(root), AS_OF).success
    truth = json.loads((root / "truth" / "params.json").read_text())["params"]
    pointer = current_snapshot(root / "published")
    with duckdb.connect(pointer["path"], read_only=True) as connection:
        nightly = json.loads(
            connection.execute("select parameters from ml.model_runs where model = 'clv'").fetchall()[0][0]
        )
        gross = fit_clv(clv_summary(connection, AS_OF, spend="gross"))
    print(json.dumps({"nightly": nightly, "gross_gamma_gamma": gross.gamma_gamma}, indent=2))
    for name in ("r", "alpha", "a", "b"):
        assert nightly["bgnbd"][name] == pytest.approx(truth[name], rel=0.10), name
    for name, value in (("p", truth["p_spend"]), ("q", truth["q"]), ("v", truth["gamma"])):
        assert gross.gamma_gamma[name] == pytest.approx(value, rel=0.10), name
