"""Model implementations, one module each, sharing the scikit-learn estimator contract."""
