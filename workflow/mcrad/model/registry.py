"""The model registry: the names every endpoint trains, locks, validates and compares."""
from __future__ import annotations

# every endpoint type
MODELS = ("clinical", "radiomics", "nomogram")
# endpoint types that support the deep stage, when deep.activate
FUSION_MODELS = ("deep", "fusion_features", "fusion_decision")
# columns of the deep stage's tables (deep/<endpoint>/features_<centre>.tsv)
DEEP_SCORE, DEEP_EMB = "deep_score", "deep_emb_"
