"""Inputs users already hold (issue 18): a Hugging Face DatasetDict, torch datasets, notebooks.

Each input is built from the same planted folder as a folder scan, and must give
the same (val_path, train_path) pairs once its row ids are mapped to the files.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit import scan
from splitaudit.dataset import ImageSplit
from splitaudit.errors import InputError, MissingDependencyError
from tests.conftest import synthetic_image, write_split_folder

TRANSFORMS = ("jpeg_q30", "resize_50", "flip", "brighten")
FAST = dict(jobs=1, cache=False, checks=["exact_duplicates", "near_duplicates", "label_conflicts"])


def pair_set(pairs: pd.DataFrame, rename: dict | None = None) -> set[tuple[str, str]]:
    rename = rename or {}
    return {(rename.get(v, v), rename.get(t, t)) for v, t in zip(pairs["val_path"], pairs["train_path"])}


def files_of(root, split: str) -> list[str]:
    """Relative paths of one split's images, in the order the adapters read them."""
    return sorted(p.relative_to(root).as_posix() for p in (root / split).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    planted = write_split_folder(root, transforms=TRANSFORMS, n_train=5, n_val=3, n_look_alikes=1)
    folder = scan(root, **FAST)
    assert len(folder.pairs) >= len(planted.copies)  # the planted copies are found at all
    return planted, folder


def check_same_as_folder(result, folder, ids: dict[str, str]) -> None:
    """The invariant of every adapter: same pairs, same kinds, same columns, same labels."""
    assert list(result.pairs.columns) == list(folder.pairs.columns)
    assert pair_set(result.pairs, ids) == pair_set(folder.pairs)
    kinds = lambda r, m: {(m.get(v, v), m.get(t, t)): k for v, t, k in
                          zip(r.pairs["val_path"], r.pairs["train_path"], r.pairs["kind"])}
    assert kinds(result, ids) == kinds(folder, {})
    assert list(result.split.images.columns) == list(folder.split.images.columns)
    assert result.split.task == folder.split.task


# -------------------------------------------------------------- Hugging Face
try:
    import datasets
except ImportError:  # the hf extra is optional: its tests skip, the others run
    datasets = None
needs_hf = pytest.mark.skipif(datasets is None, reason="datasets not installed (splitaudit[hf])")


def _hf_split_dict(root, name: str) -> dict:
    paths = files_of(root, "val" if name == "validation" else name)
    return {"image": [{"bytes": (root / p).read_bytes(), "path": None} for p in paths],
            "label": [p.split("/")[1] for p in paths]}, paths


@needs_hf
def test_hf_from_dict_same_pairs_as_folder(planted, tmp_path):
    planted, folder = planted
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    parts, ids = {}, {}
    for name in ("train", "validation"):
        data, paths = _hf_split_dict(planted.root, name)
        parts[name] = datasets.Dataset.from_dict(data, features=features)
        ids.update({f"{name}[{i}]": p for i, p in enumerate(paths)})
    dd = datasets.DatasetDict(parts)
    result = scan(dd, **FAST)
    assert set(result.split.images["path"]) == set(ids)  # rows without a file path: stable ids
    check_same_as_folder(result, folder, ids)
    # ClassLabel ids became the class names
    assert set(result.split.images["label"]) == {"cat", "dog"}
    assert result.pairs["label_conflict"].sum() == folder.pairs["label_conflict"].sum()


@needs_hf
def test_hf_imagefolder_reads_files_in_place(planted, tmp_path):
    planted, folder = planted
    dd = datasets.load_dataset("imagefolder", data_dir=str(planted.root), cache_dir=str(tmp_path / "hf"))
    assert {"train", "validation"} <= set(dd) or {"train", "val"} <= set(dd)
    store = tmp_path / "store"
    split = ImageSplit.from_hf(dd, store=store)
    # files are read where they are, reported relative to the data folder: nothing copied
    assert not any(store.rglob("*.png"))
    assert set(split.images["path"]) == set(folder.split.images["path"])
    result = scan(split, **FAST)
    check_same_as_folder(result, folder, {})


@needs_hf
def test_hf_saved_to_disk_via_cli(planted, tmp_path):
    """``scan --hf DIR`` on a saved DatasetDict: rows carry bytes and base names only."""
    from splitaudit.cli import main

    planted, folder = planted
    dd = datasets.load_dataset("imagefolder", data_dir=str(planted.root), cache_dir=str(tmp_path / "hf"))
    dd.save_to_disk(str(tmp_path / "saved"))
    out, cache = tmp_path / "out", tmp_path / "cache"
    code = main(["scan", "--hf", str(tmp_path / "saved"), "--out", str(out), "--cache", str(cache),
                 "--jobs", "1", "--quiet", "--no-html", "--checks", "exact_duplicates,near_duplicates"])
    assert code == 0
    pairs = pd.read_csv(out / "duplicates.csv")
    assert len(pairs) == len(folder.pairs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_train"] == folder.split.n_train and summary["n_val"] == folder.split.n_val
    assert any((cache / "images").rglob("*.png"))  # the image store sits beside the fingerprint cache
    # --out inside the saved dataset is refused (splitaudit never writes into the data)
    assert main(["scan", "--hf", str(tmp_path / "saved"), "--out", str(tmp_path / "saved" / "o"),
                 "--no-cache", "--quiet"]) == 2


@needs_hf
def test_hf_store_is_reused_and_hits_the_cache(planted, tmp_path):
    planted, _ = planted
    paths = files_of(planted.root, "train")[:4]
    image = {"bytes": (planted.root / paths[0]).read_bytes(), "path": None}
    part = datasets.Dataset.from_dict({"image": [image, image], "y": [0.5, 1.5]},
                                      features=datasets.Features({"image": datasets.Image(),
                                                                  "y": datasets.Value("float32")}))
    dd = datasets.DatasetDict({"train": part, "test": part})
    first = scan(dd, jobs=1, cache=tmp_path / "cache", checks=["exact_duplicates"])
    assert first.split.task == "regression"  # a numeric column named y: the target
    # four rows of one image: each its own file, and every cross pair is exact
    assert first.split.images["abspath"].nunique() == 4
    assert (first.pairs["kind"] == "exact").all() and len(first.pairs) >= 2
    second = scan(dd, jobs=1, cache=tmp_path / "cache", checks=["exact_duplicates"])
    assert "(0 files written this time)" in " ".join(second.split.notes)
    assert second.fingerprints.stats.get("cached", 0) == 4


@needs_hf
def test_hf_split_and_column_errors(planted):
    planted, _ = planted
    data, _ = _hf_split_dict(planted.root, "train")
    part = datasets.Dataset.from_dict(data).cast_column("image", datasets.Image())
    with pytest.raises(InputError, match="no val split"):
        ImageSplit.from_hf(datasets.DatasetDict({"train": part, "holdout": part}), store=False)
    split = ImageSplit.from_hf(datasets.DatasetDict({"train": part, "holdout": part}), val="holdout", store=False)
    assert split.n_val == split.n_train
    with pytest.raises(InputError, match="not a column"):
        ImageSplit.from_hf(datasets.DatasetDict({"train": part, "val": part}), image="pixels", store=False)
    with pytest.raises(TypeError):
        ImageSplit.from_hf({"train": part, "val": part})


def test_hf_missing_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    from splitaudit import sources

    with pytest.raises(MissingDependencyError, match=r"splitaudit\[hf\]"):
        sources.load_hf(".")


# --------------------------------------------------------------------- torch
try:
    import torch
    from torch.utils.data import Dataset, Subset
except ImportError:
    torch, Dataset, Subset = None, object, None
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (splitaudit[torch])")


class FileTensors(Dataset):
    """What a training script holds: CHW float tensors in [0, 1] and integer labels."""

    classes = ["cat", "dog"]

    def __init__(self, root, paths, as_uint8=False):
        self.root, self.paths, self.as_uint8 = root, paths, as_uint8

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        arr = np.array(Image.open(self.root / self.paths[i]).convert("RGB"))
        tensor = torch.from_numpy(arr).permute(2, 0, 1)
        tensor = tensor if self.as_uint8 else tensor.float() / 255
        return tensor, self.classes.index(self.paths[i].split("/")[1])


@needs_torch
def test_torch_datasets_same_pairs_as_folder(planted):
    planted, folder = planted
    train_paths, val_paths = files_of(planted.root, "train"), files_of(planted.root, "val")
    ids = {**{f"train[{i}]": p for i, p in enumerate(train_paths)},
           **{f"val[{i}]": p for i, p in enumerate(val_paths)}}
    result = scan(train=FileTensors(planted.root, train_paths),
                  val=FileTensors(planted.root, val_paths, as_uint8=True), **FAST)
    check_same_as_folder(result, folder, ids)
    assert set(result.split.images["label"]) == {"cat", "dog"}  # named by the dataset's classes


@needs_torch
def test_torch_subsets_sharing_indices_are_reported(tmp_path):
    class Pictures(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return synthetic_image(7000 + i, side=48), i % 2

    full = Pictures()
    train, val = Subset(full, list(range(0, 8))), Subset(full, [6, 7, 8, 9])
    result = scan(train=train, val=val, **FAST)
    assert pair_set(result.pairs) == {("val[0]", "train[6]"), ("val[1]", "train[7]")}
    assert (result.pairs["kind"] == "exact").all()
    assert any("share 2 indices (6, 7)" in n for n in result.split.notes)
    # a Subset of a Subset resolves to the same base indices
    nested = Subset(Subset(full, list(range(10))), [8, 9])
    assert any("share 2 indices" in n for n in ImageSplit.from_torch(Subset(full, [8, 9, 1]), nested,
                                                                     store=False).notes)


@needs_torch
def test_torch_tensor_assumptions():
    from splitaudit.sources import to_pil

    grey = torch.zeros(1, 5, 7)
    assert to_pil(grey).size == (7, 5) and to_pil(grey).mode == "L"
    rgb = torch.full((3, 4, 6), 255, dtype=torch.uint8)
    assert np.asarray(to_pil(rgb)).shape == (4, 6, 3) and np.asarray(to_pil(rgb)).max() == 255
    assert np.asarray(to_pil(np.ones((4, 6, 3), dtype=np.float32))).max() == 255  # numpy: HWC
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_pil(torch.randn(3, 4, 4) - 2)  # normalised
    with pytest.raises(ValueError, match="channels"):
        to_pil(torch.zeros(5, 4, 4))
    with pytest.raises(TypeError):
        to_pil("image.png")


@needs_torch
def test_torch_regression_targets_and_errors(tmp_path):
    class Targets(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)), torch.tensor(i * 0.5)

    split = ImageSplit.from_torch(Targets(), Targets(), store=tmp_path / "store")
    assert split.task == "regression" and split.images["target"].tolist() == [0.0, 0.5, 1.0] * 2
    with pytest.raises(InputError, match="train= and val= together"):
        scan(train=Targets(), val=str(tmp_path), **FAST)
    with pytest.raises(InputError, match="pass train=train_ds"):
        scan(Targets(), **FAST)


# ------------------------------------------------------------------ notebook
def test_repr_html(planted):
    _, folder = planted
    html = folder._repr_html_()
    assert html.startswith("<div class='splitaudit-nb'>") and "<img src=\"data:image/png;base64," in html
    assert "splitaudit scan" in html and "exact_duplicates" in html
    assert html.count("class='pair'") == min(6, len(folder.pairs))
    assert "<style>" in html and "body{" not in html  # styles scoped: the notebook keeps its own


def test_repr_html_escapes_names(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split / "<b>x").mkdir(parents=True)
        synthetic_image(1).save(root / split / "<b>x" / "<i>a.png")
    html = scan(root, **FAST)._repr_html_()
    assert "<i>a.png" not in html and "&lt;i&gt;a.png" in html


def test_repr_html_of_explanation_kfold_and_audit(planted):
    from splitaudit.audit import AuditResult
    from splitaudit.explain import explain
    from splitaudit.retrain.result import KFoldResult, RunResult
    from splitaudit.retrain.verdict import Verdict

    _, folder = planted
    history = pd.DataFrame({"epoch": range(1, 6), "loss": [1.0, 0.8, 0.7, 0.65, 0.6],
                            "val_loss": [0.9, 0.7, 0.6, 0.55, 0.5]})
    explanation = explain(history)
    html = explanation._repr_html_()
    assert "splitaudit explain" in html and "measurement_lag" in html

    run = lambda fold: RunResult(fold, 10, 5, 0.6, 0.5, 0.55, -0.1, -0.05, pd.DataFrame({"val_loss": [0.5]}))
    verdict = Verdict(True, 3, 3, -0.1, -0.2, 0.0, 50.0, "the <gap> persists across re-splits")
    kfold = KFoldResult(run(None), (run(0), run(1), run(2)), verdict)
    html = kfold._repr_html_()
    assert "&lt;gap&gt;" in html and html.count("<tr") == 5  # header + original + 3 folds

    audit = AuditResult(scan=folder, kfold=kfold, explanation=explanation)
    html = audit._repr_html_()
    assert "splitaudit audit" in html and "splitaudit scan" in html and "splitaudit k-fold" in html
