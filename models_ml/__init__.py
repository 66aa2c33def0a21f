"""Pure Python customer models: functions from frames to frames, no I/O, no Dagster."""

from models_ml.churn import (
    ChurnModel,
    RecencyBaseline,
    classification_figures,
    evaluate_churn,
    score_churn,
    train_churn_model,
    train_recency_baseline,
)
from models_ml.clv import (
    ClvFit,
    ClvFitError,
    baseline_clv,
    baseline_purchases,
    evaluate_holdout,
    fit_clv,
    frequency_recency_matrix,
    predict_clv,
    predict_purchases,
)
from models_ml.rfm import SEGMENTS, quintile_score, score_rfm, summarise_segments
from models_ml.segments import Segmentation, segment_customers
from models_ml.tiers import TIERS, tier_movement

__all__ = [
    "SEGMENTS",
    "TIERS",
    "ChurnModel",
    "ClvFit",
    "ClvFitError",
    "RecencyBaseline",
    "Segmentation",
    "baseline_clv",
    "baseline_purchases",
    "classification_figures",
    "evaluate_churn",
    "evaluate_holdout",
    "fit_clv",
    "frequency_recency_matrix",
    "predict_clv",
    "predict_purchases",
    "quintile_score",
    "score_churn",
    "score_rfm",
    "segment_customers",
    "summarise_segments",
    "tier_movement",
    "train_churn_model",
    "train_recency_baseline",
]
