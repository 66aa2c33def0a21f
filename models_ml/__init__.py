"""Pure Python customer models: functions from frames to frames, no I/O, no Dagster."""

from models_ml.rfm import SEGMENTS, quintile_score, score_rfm, summarise_segments

__all__ = ["SEGMENTS", "quintile_score", "score_rfm", "summarise_segments"]
