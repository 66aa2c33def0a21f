"""Pure Python customer models: functions from frames to frames, no I/O, no Dagster."""

from models_ml.churn import (
    ChurnModel,
    ChurnRun,
    RecencyBaseline,
    choose_churn,
    classification_figures,
    evaluate_churn,
    no_churn_scores,
    score_churn,
    train_churn_model,
    train_recency_baseline,
    usable_features,
)
from models_ml.clv import (
    PURCHASE_MODELS,
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
from models_ml.clv_holdout import CandidateRanking, ClvChoice, choose_clv, rank_candidates, score_clv
from models_ml.protocol import Comparison, Verdict, compare, refuse
from models_ml.rfm import SEGMENTS, quintile_score, score_rfm, summarise_segments
from models_ml.segments import Segmentation, no_segments, segment_customers
from models_ml.tiers import TIERS, tier_movement
from models_ml.validation import InsufficientDataError, validate_columns

__all__ = [
    "PURCHASE_MODELS",
    "SEGMENTS",
    "TIERS",
    "CandidateRanking",
    "ChurnModel",
    "ChurnRun",
    "ClvChoice",
    "ClvFit",
    "ClvFitError",
    "Comparison",
    "InsufficientDataError",
    "RecencyBaseline",
    "Segmentation",
    "Verdict",
    "baseline_clv",
    "baseline_purchases",
    "choose_churn",
    "choose_clv",
    "classification_figures",
    "compare",
    "evaluate_churn",
    "evaluate_holdout",
    "fit_clv",
    "frequency_recency_matrix",
    "no_churn_scores",
    "no_segments",
    "predict_clv",
    "predict_purchases",
    "quintile_score",
    "rank_candidates",
    "refuse",
    "score_churn",
    "score_clv",
    "score_rfm",
    "segment_customers",
    "summarise_segments",
    "tier_movement",
    "train_churn_model",
    "train_recency_baseline",
    "usable_features",
    "validate_columns",
]
