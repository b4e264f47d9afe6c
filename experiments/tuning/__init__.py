"""`tradingbot tune`: an Optuna study over model and strategy parameters, resumable and parallel.

One concept per module, as Optuna's own ``samplers/``, ``pruners/``, ``storages/``:

* :mod:`~experiments.tuning.space`: the ``[tune]`` section (what to search, how to judge);
* :mod:`~experiments.tuning.objective`: the tuning/test split and one trial, a
  walk-forward run scored per fold (strategy metrics from the replay);
* :mod:`~experiments.tuning.storage`: where studies live (the journal file under the
  user dir by default, ``--storage URL`` for an RDB), samplers, pruners, counts;
* :mod:`~experiments.tuning.liveness`: heartbeats, and trials of dead workers reclaimed;
* :mod:`~experiments.tuning.worker`: one worker process running trials;
* :mod:`~experiments.tuning.claim`: one finaliser per study;
* :mod:`~experiments.tuning.finalise`: the best trial refitted, scored on the test
  window, registered as ``challenger``, its strategy values written as Freqtrade's
  ``<userdir>/strategies/<Strategy>.json``;
* :mod:`~experiments.tuning.study`: the whole tune, from request to result.

``--trials N`` is the size the study should reach: finished trials (complete,
pruned or failed) are counted across runs, so a killed tune started again with the
same ``--study`` continues to exactly N. ``--jobs K`` runs K worker processes on the
study. MLflow holds one parent run per study and one child run per trial.

Import from the modules themselves: this package imports nothing, so that reading a
spec (which needs only :mod:`~experiments.tuning.space`) never loads Optuna or MLflow.
"""
