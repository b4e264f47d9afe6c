"""Models, walk-forward training, MLflow tracking and registry, tuning, serving."""
