"""FreqAI's data pipeline ([pipeline], ml/input_pipeline.py): recency weights, PCA, SVM and
DBSCAN outlier removal with their protection, training noise; each fitted on the
training rows only, read row by row (prefix-invariant), and traded through the adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import SpecError
from common.layout import UserDir
from experiments.spec import parse_experiment
from ml.config import PipelineConfig
from ml.input_pipeline import InputPipeline, recency_weights
from tests.conftest import import_synthetic, local_context


def _inputs(rows: int = 800, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 2))
    # six columns, four of them mixtures of the first two: PCA keeps few components
    values = np.column_stack(
        [base, base @ rng.normal(size=(2, 4)) + 0.001 * rng.normal(size=(rows, 4))]
    )
    values[:30, 3] = np.nan  # a warm-up
    frame = pd.DataFrame(values * [1, 10, 100, 1, 5, 0.1], columns=[f"%-f{i}" for i in range(6)])
    target = (base[:, 0] > 0).astype("float64")
    return frame, target


def _far(frame: pd.DataFrame) -> pd.DataFrame:
    """One row far outside the training rows' range in every column."""
    return pd.DataFrame([frame.abs().max().to_numpy() * 6.0], columns=frame.columns)


def test_recency_weights_are_freqai_s() -> None:
    rows, factor = 500, 0.9
    freqai = np.exp(-np.arange(rows) / (factor * rows))[::-1]  # data_kitchen's expression
    np.testing.assert_allclose(recency_weights(rows, factor), freqai, rtol=1e-15)


def test_pca_keeps_the_components_that_explain_the_scaled_rows() -> None:
    frame, target = _inputs()
    pipeline = InputPipeline(PipelineConfig(principal_component_analysis=True)).fit(frame, target)
    out = pipeline.transform(frame)
    assert list(out.columns) == [f"pc_{i}" for i in range(len(out.columns))]
    assert 2 <= len(out.columns) < 6  # the mixtures add (almost) nothing
    assert out.iloc[:30].isna().all().all() and np.isfinite(out.iloc[30:]).all().all()
    trained = out.iloc[30:].to_numpy()
    assert trained.min() >= -1 - 1e-9 and trained.max() <= 1 + 1e-9  # scaled to [-1, 1]
    assert pipeline.report()["pipeline.pca_components"] == len(out.columns)


def _beyond_the_svm(pipeline: InputPipeline, frame: pd.DataFrame) -> pd.DataFrame:
    """A row far on the outlier side of the SVM's boundary: FreqAI's SVM is linear (a
    hyperplane with the training rows on one side), not a distance from them."""
    normal = pipeline.svm_.coef_ / np.linalg.norm(pipeline.svm_.coef_)
    scaled = -6.0 * normal
    return pd.DataFrame([pipeline.centre_ + pipeline.half_range_ * scaled], columns=frame.columns)


@pytest.mark.parametrize(
    "settings",
    [
        # FreqAI's nu = 0.01 flags none of these 800 rows: 0.1 flags about 4%
        {"use_SVM_to_remove_outliers": True, "svm_params": {"nu": 0.1, "shuffle": False}},
        {"use_DBSCAN_to_remove_outliers": True},
    ],
    ids=["svm", "dbscan"],
)
def test_a_detector_flags_a_far_row_and_withholds_flagged_training_rows(
    settings: dict[str, object],
) -> None:
    frame, target = _inputs()
    config = PipelineConfig.model_validate(settings)
    detector = next(iter(settings))
    pipeline = InputPipeline(config, seed=1).fit(frame, target)
    far = _beyond_the_svm(pipeline, frame) if "SVM" in detector else _far(frame)
    assert pipeline.outliers(far)[0]
    flagged = pipeline.outliers(frame)
    assert not flagged[:30].any()  # incomplete rows are never outliers
    assert 0 < flagged.sum() <= 0.3 * len(frame)
    rows = pipeline.training_rows(frame, target)
    assert np.isnan(rows.target[flagged]).all()
    np.testing.assert_array_equal(rows.target[~flagged], target[~flagged])
    assert pipeline.report()["pipeline.training_outliers"] == flagged.sum()


def test_a_detector_that_flags_too_many_training_rows_is_not_used() -> None:
    frame, target = _inputs()
    greedy = PipelineConfig(
        use_svm_to_remove_outliers=True,
        svm_params={"nu": 0.6, "shuffle": False},
        outlier_protection_percentage=30,
    )
    pipeline = InputPipeline(greedy).fit(frame, target)
    assert pipeline.dropped_detectors_ == ["svm"] and not pipeline.detects_outliers
    assert not pipeline.outliers(frame).any()
    assert pipeline.report()["pipeline.svm_protected"] == 1.0
    lenient = greedy.model_copy(update={"outlier_protection_percentage": 90.0})
    assert InputPipeline(lenient).fit(frame, target).detects_outliers


def test_noise_and_weights_touch_only_the_training_rows_and_repeat_with_the_seed() -> None:
    frame, target = _inputs()
    config = PipelineConfig(noise_standard_deviation=0.05, weight_factor=0.5)
    rows = InputPipeline(config, seed=3).fit(frame, target).training_rows(frame, target)
    again = InputPipeline(config, seed=3).fit(frame, target).training_rows(frame, target)
    pd.testing.assert_frame_equal(rows.inputs, again.inputs)
    moved = (rows.inputs - frame).iloc[30:]
    assert (moved != 0).all().all()
    # a deviation of 0.05 of each column's half-range, as in FreqAI's [-1, 1] space
    half_range = (frame.iloc[30:].max() - frame.iloc[30:].min()) / 2
    assert np.allclose((moved / half_range).std(), 0.05, rtol=0.15)
    assert rows.inputs.iloc[:30].isna().any(axis=1).all()
    assert rows.sample_weight is not None
    np.testing.assert_allclose(rows.sample_weight[30:], recency_weights(len(frame) - 30, 0.5))
    transformed = InputPipeline(config, seed=3).fit(frame, target).transform(frame)
    pd.testing.assert_frame_equal(transformed, frame)  # later rows: no noise


def test_every_step_reads_a_row_alone_so_a_prefix_gives_the_same_values() -> None:
    frame, target = _inputs(1200)
    config = PipelineConfig(
        principal_component_analysis=True,
        use_svm_to_remove_outliers=True,
        use_dbscan_to_remove_outliers=True,
    )
    pipeline = InputPipeline(config, seed=2).fit(frame.iloc[:800], target[:800])
    full_values, full_flags = pipeline.transform(frame), pipeline.outliers(frame)
    for end in (801, 1000, 1199):
        prefix = frame.iloc[:end]
        pd.testing.assert_frame_equal(pipeline.transform(prefix), full_values.iloc[:end])
        np.testing.assert_array_equal(pipeline.outliers(prefix), full_flags[:end])


def test_weights_change_what_lightgbm_learns() -> None:
    from ml.models.lgbm import LightGBMForecaster

    frame, target = _inputs(2000)
    target = target.copy()
    target[1000:] = 1.0 - target[1000:]  # the relation flips half way: recent rows disagree
    plain = LightGBMForecaster(n_estimators=30, validation_fraction=0).fit(frame, target)
    weights = recency_weights(len(frame), 0.1)
    weighted = LightGBMForecaster(n_estimators=30, validation_fraction=0).fit(
        frame, target, sample_weight=weights
    )
    recent = slice(1500, 2000)
    hits = (weighted.predict(frame.iloc[recent]) == target[recent]).mean()
    assert hits > 0.8 > (plain.predict(frame.iloc[recent]) == target[recent]).mean()


def test_the_spec_refuses_what_cannot_work_and_keeps_old_hashes() -> None:
    base = {
        "name": "p",
        "model": {"kind": "lightgbm"},
    }
    plain = parse_experiment(base, source="t")
    assert plain.pipeline is None
    assert plain.hash == parse_experiment({**base, "pipeline": None}, source="t").hash
    freqai_keys = {"use_SVM_to_remove_outliers": True, "use_DBSCAN_to_remove_outliers": True}
    spec = parse_experiment({**base, "pipeline": freqai_keys}, source="t")
    assert spec.pipeline is not None and spec.pipeline.use_svm_to_remove_outliers
    assert spec.hash != plain.hash and spec.training.pipeline == spec.pipeline
    with pytest.raises(SpecError, match="does not take row weights"):
        parse_experiment(
            {**base, "model": {"kind": "rules"}, "pipeline": {"weight_factor": 0.9}}, source="t"
        )
    with pytest.raises(SpecError, match="unknown svm_params"):
        parse_experiment({**base, "pipeline": {"svm_params": {"nuu": 0.1}}}, source="t")


def test_a_spec_trains_walk_forward_through_the_pipeline_and_the_adapter_withholds_outliers(
    tmp_path: Path,
) -> None:
    from experiments.training import train
    from ml.model_source import load_bundle
    from ml.registry import promote
    from ml.serving import ModelAdapter
    from ml.serving.served import logged_folds
    from ml.tracking import configure, default_tracking_uri

    userdir = tmp_path / "ud"
    candles = import_synthetic(userdir, "BTC/USDT", candles=2400, seed=5)
    spec = parse_experiment(
        {
            "name": "piped",
            "data": {"timerange": "-20210315"},
            "features": {"preset": "default", "include_shifted_candles": 1},
            "regime": {"n_restarts": 1, "n_iter": 20},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 15, "num_leaves": 5}},
            "walk_forward": {"folds": 2, "test_size": 200},
            "pipeline": {
                "weight_factor": 0.9,
                "principal_component_analysis": True,
                "use_SVM_to_remove_outliers": True,
                "svm_params": {"nu": 0.05, "shuffle": False},
                "noise_standard_deviation": 0.02,
            },
        },
        source="t",
    )
    uri = default_tracking_uri(userdir)
    result = train(spec, context=local_context(userdir, uri))
    assert result.folds == 2
    assert "outlier" in result.out_of_sample.columns
    client = configure(uri, UserDir(userdir))
    folds = logged_folds(client, result.run_id, tmp_path / "folds")
    assert len(folds) == 2 and all(f["metrics"]["pipeline.pca_components"] >= 1 for f in folds)
    promote(client, "piped", result.version, "t", user="pytest", force=True)
    bundle = load_bundle("models:/piped@champion")
    assert bundle.input_pipeline is not None
    assert "%-rsi_14_shift-1" in bundle.metadata.input_columns  # FreqAI's shifted candles
    assert bundle.forecaster.feature_names_in_[0] == "pc_0"
    adapter = ModelAdapter("models:/piped@champion", tracking_uri=uri)
    served = adapter.populate(candles, "BTC/USDT")
    after = served["date"] > pd.Timestamp(bundle.metadata.train_window.last)
    flagged = bundle.predict(candles)["outlier"].to_numpy() > 0
    assert flagged[after.to_numpy()].any()
    assert (served.loc[flagged & after.to_numpy(), "do_predict"] == 0).all()
    trusted = served.loc[~flagged & after.to_numpy() & served["&-prediction"].notna()]
    assert (trusted["do_predict"] == 1).all()
    assert adapter.guard.outliers["BTC/USDT"] == int((flagged & after.to_numpy()).sum())
    # live, one candle at a time: the pipeline's components and flags as in the batch
    live = ModelAdapter("models:/piped@champion", tracking_uri=uri)
    live.populate(candles.iloc[:2300].copy(), "BTC/USDT", live=True)
    for end in range(2301, 2311):
        step = live.populate(candles.iloc[end - 1200 : end].copy(), "BTC/USDT", live=True)
        for column in ("&-prediction", "&-p_up", "do_predict"):
            assert step[column].iloc[-1] == pytest.approx(served[column].iloc[end - 1], rel=1e-9)
