"""History readers: every format, Lightning's mixed rows, round-trips, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitaudit.errors import HistoryError
from splitaudit.explain import History, read_history

FORMATS = ("keras_csv", "keras_json", "plain_csv", "lightning_csv")


def write_history(path_dir, kind, train, val, train_eval=None, steps=7, extra=True):
    """Write losses the way each framework does; return the path."""
    n = len(train)
    if kind == "keras_csv":
        frame = pd.DataFrame({"epoch": range(n)})
        if extra:
            frame["accuracy"] = np.linspace(0.5, 0.9, n)
        frame["loss"] = train
        if train_eval is not None:
            frame["loss_eval"] = train_eval
        if extra:
            frame["val_accuracy"] = np.linspace(0.55, 0.92, n)
        frame["val_loss"] = val
        path = path_dir / "log.csv"
        frame.to_csv(path, index=False)
    elif kind == "keras_json":
        data = {"loss": list(train), "val_loss": list(val)}
        if extra:
            data["accuracy"] = list(np.linspace(0.5, 0.9, n))
        if train_eval is not None:
            data["loss_eval"] = list(train_eval)
        path = path_dir / "history.json"
        path.write_text(json.dumps(data))
    elif kind == "plain_csv":
        frame = pd.DataFrame({"train_loss": train, "val_loss": val})
        if train_eval is not None:
            frame["train_loss_eval"] = train_eval
        path = path_dir / "plain.csv"
        frame.to_csv(path, index=False)
    elif kind == "lightning_csv":
        path = path_dir / "metrics.csv"
        lightning_frame(train, val, train_eval, steps=steps).to_csv(path, index=False)
    else:  # pragma: no cover
        raise ValueError(kind)
    return path


def lightning_frame(train, val, train_eval=None, *, steps=7, log_every=3):
    """metrics.csv as Lightning's CSVLogger writes it: step rows, then val and train epoch rows."""
    rows = []
    global_step = 0
    for epoch, (t, v) in enumerate(zip(train, val)):
        for local in range(steps):
            if (global_step + 1) % log_every == 0:
                rows.append({"epoch": epoch, "step": global_step, "train_loss_step": t * (1.2 - 0.05 * local)})
            global_step += 1
        rows.append({"epoch": epoch, "step": global_step - 1, "val_loss": v})
        row = {"epoch": epoch, "step": global_step - 1, "train_loss_epoch": t}
        if train_eval is not None:
            row["train_loss_eval"] = train_eval[epoch]
        rows.append(row)
    columns = ["epoch", "step", "train_loss_epoch", "train_loss_step", "val_loss"]
    if train_eval is not None:
        columns.append("train_loss_eval")
    return pd.DataFrame(rows, columns=columns)


def assert_history(history, train, val, train_eval=None):
    frame = history.frame
    assert frame["epoch"].tolist() == list(range(1, len(train) + 1))
    np.testing.assert_allclose(frame["train_loss"], train, rtol=1e-12)
    np.testing.assert_allclose(frame["val_loss"], val, rtol=1e-12)
    if train_eval is None:
        assert "train_loss_eval" not in frame
    else:
        np.testing.assert_allclose(frame["train_loss_eval"], train_eval, rtol=1e-12)


@pytest.mark.parametrize("kind", FORMATS)
def test_each_file_format_is_detected(tmp_path, kind):
    train, val = [1.0, 0.7, 0.55], [0.8, 0.6, 0.5]
    history = read_history(write_history(tmp_path, kind, train, val))
    assert history.format == kind
    assert_history(history, train, val)


@pytest.mark.parametrize("kind", FORMATS)
def test_eval_mode_train_loss_is_read(tmp_path, kind):
    train, val, train_eval = [1.0, 0.7, 0.55], [0.8, 0.6, 0.5], [0.75, 0.5, 0.4]
    history = read_history(write_history(tmp_path, kind, train, val, train_eval))
    assert history.has_eval
    assert_history(history, train, val, train_eval)


def test_lightning_mixed_rows_collapse_to_one_row_per_epoch(tmp_path):
    train, val = [0.9, 0.6, 0.5, 0.45], [0.7, 0.55, 0.48, 0.44]
    raw = lightning_frame(train, val, steps=10)
    assert raw["val_loss"].isna().sum() > len(train)  # NaN-padded rows really are mixed in
    path = tmp_path / "metrics.csv"
    raw.to_csv(path, index=False)
    history = read_history(path)
    assert history.format == "lightning_csv"
    assert len(history) == len(train)
    assert_history(history, train, val)
    assert history.steps_per_epoch == 10
    # reading the directory finds metrics.csv
    assert read_history(tmp_path).format == "lightning_csv"


def test_lightning_without_epoch_level_train_loss_averages_steps():
    frame = pd.DataFrame(
        {"epoch": [0, 0, 0, 1, 1, 1], "step": [0, 1, 1, 2, 3, 3],
         "train_loss_step": [1.0, 0.8, np.nan, 0.6, 0.4, np.nan],
         "val_loss": [np.nan, np.nan, 0.7, np.nan, np.nan, 0.45]}
    )
    history = read_history(frame)
    assert history.format == "lightning_dataframe"
    np.testing.assert_allclose(history.frame["train_loss"], [0.9, 0.5])
    np.testing.assert_allclose(history.frame["val_loss"], [0.7, 0.45])


def test_in_memory_objects():
    class KerasHistory:  # what model.fit returns: an object with a .history dict
        history = {"loss": [0.5, 0.4], "val_loss": [0.45, 0.41]}

    assert read_history(KerasHistory()).format == "keras_dict"
    records = [{"train_loss": 0.5, "val_loss": 0.4}, {"train_loss": 0.4, "val_loss": 0.35}]
    assert read_history(records).format == "plain_dict"
    df = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.5, 0.4], "val_loss": [0.4, 0.3]})
    history = read_history(df)
    assert history.format == "plain_dataframe"
    assert history.frame["epoch"].tolist() == [1, 2]  # 1-based epochs kept as they are
    assert read_history(history) is history
    assert isinstance(history, History)
    assert json.loads(history.to_json())["val_loss"] == [0.4, 0.3]


def test_unknown_csv_raises_history_error_naming_columns(tmp_path):
    path = tmp_path / "weird.csv"
    pd.DataFrame({"iteration": [1, 2], "cost": [0.5, 0.4], "score": [1, 2]}).to_csv(path, index=False)
    with pytest.raises(HistoryError) as info:
        read_history(path)
    message = str(info.value)
    assert "iteration" in message and "cost" in message  # columns found
    assert "val_loss" in message and "Lightning" in message  # what was expected


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "not valid JSON"),
        ('"just a string"', "expected an object of lists"),
        ('{"loss": [0.5, "abc"], "val_loss": [0.4, 0.3]}', "must hold numbers"),
        ('{"loss": [null, null], "val_loss": [0.4, null]}', "no epoch with both"),
    ],
)
def test_malformed_json_is_a_history_error(tmp_path, content, fragment):
    path = tmp_path / "h.json"
    path.write_text(content)
    with pytest.raises(HistoryError, match=fragment):
        read_history(path)


def test_wrong_types_and_missing_files(tmp_path):
    with pytest.raises(TypeError, match="path_or_obj"):
        read_history(42)
    with pytest.raises(HistoryError, match="does not exist"):
        read_history(tmp_path / "missing.csv")
    with pytest.raises(HistoryError, match="no history file"):
        read_history(tmp_path)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        read_history({"loss": [1.0], "val_loss": [0.9]}, steps_per_epoch=0)


losses = st.floats(min_value=1e-6, max_value=50.0, allow_nan=False, allow_infinity=False)


@st.composite
def histories(draw):
    n = draw(st.integers(min_value=1, max_value=15))
    train = draw(st.lists(losses, min_size=n, max_size=n))
    val = draw(st.lists(losses, min_size=n, max_size=n))
    train_eval = draw(st.one_of(st.none(), st.lists(losses, min_size=n, max_size=n)))
    return train, val, train_eval


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=histories(), kind=st.sampled_from(FORMATS), steps=st.integers(1, 6), extra=st.booleans())
def test_round_trip_every_format(tmp_path, data, kind, steps, extra):
    train, val, train_eval = data
    folder = tmp_path / f"{kind}-{len(train)}-{steps}-{extra}"
    folder.mkdir(exist_ok=True)
    history = read_history(write_history(folder, kind, train, val, train_eval, steps=steps, extra=extra))
    assert history.format == kind
    assert_history(history, train, val, train_eval)
    # and back through the normalised table itself
    again = read_history(history.to_frame())
    assert_history(again, train, val, train_eval)
