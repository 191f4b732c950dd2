"""Model (stage 1): trained and locked on the training centre(s) only.

registry (model names), selection (feature selectors and the radiomics pipeline), nomogram (rad-score +
independent clinical predictors), survival (penalised Cox), fusion (deep and fusion models), train (fit,
internal validation, thresholds), explain (exact linear SHAP), bundle (locked models with a sha256 manifest),
stage (what the `mcrad train`, `train-fusion` and `explain` commands run). Kept import-free so that the
Snakefile can read the registry without loading scikit-learn.
"""
