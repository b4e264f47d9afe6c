"""Models, walk-forward training (a job of folds over one or several markets), MLflow
tracking and registry, serving."""
