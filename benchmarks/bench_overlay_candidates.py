"""Overlay candidates at the user's scale: are the originals of planted overlay copies still among
the 3 neighbours the overlay test compares, once 70,000 real Fashion-MNIST images are distractors?

    python benchmarks/bench_overlay_candidates.py --fmnist-real /work/data/fmnist --seeds 0,1,3,4,5

The planted fmnist96 sets (``copysets.py``, built into ``--data`` if missing) hold 150 overlay copies
per kind over five seeds, among ~1,500 train images: there the search is exact and the crowd small.
Here every image of the real Fashion-MNIST tree (train and val) joins each set's train side, so the
candidate search runs as on a 60k split (faiss's inverted file, from 20k images). Counted: the planted
(val, train) pairs among ``overlay_candidates``' output, per edit kind, with and without the masked
search (``OCCLUDED_NEIGHBOURS``), and with an exact search. Fingerprints are cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import copysets  # noqa: E402

from splitaudit.duplicates import overlay  # noqa: E402
from splitaudit.fingerprints import compute_fingerprints  # noqa: E402
from splitaudit.scan import resolve_split  # noqa: E402
from splitaudit.search.mirror import mirror_project, thumb_vectors  # noqa: E402

VARIANTS = {"shortlist only": dict(OCCLUDED_NEIGHBOURS=0),
            "with the masked search (default)": {},
            "the same, exact search": dict(_IVF_FROM=10 ** 12)}


def kept(name: str, root: Path, distractors: np.ndarray, cache: Path) -> pd.DataFrame:
    """Per variant and overlay edit kind: planted pairs kept among the candidates, of how many."""
    split = resolve_split(root)
    fps = compute_fingerprints(split, cache=cache / f"fp_{name}.sqlite")
    where = {str(p).split(name + "/")[-1]: i for i, p in enumerate(split.images["path"])}
    truth = pd.read_csv(root / "truth.csv")
    truth = truth[truth["edit"].str.startswith("overlay")]
    a = truth["val_path"].map(where).to_numpy(np.int64)
    b = truth["train_path"].map(where).to_numpy(np.int64)
    vectors = thumb_vectors(np.concatenate([fps.thumbs, distractors]))
    pooled = np.stack([vectors, vectors.reshape(-1, 16, 16)[:, :, ::-1].reshape(-1, 256)])
    coords = mirror_project(vectors, 64)
    sides = split.images["split"].to_numpy()
    base = np.concatenate([np.flatnonzero(sides == "train"), len(fps.thumbs) + np.arange(len(distractors))])
    rows = []
    for label, settings in VARIANTS.items():
        saved = {key: getattr(overlay, key) for key in settings}
        try:
            for key, value in settings.items():
                setattr(overlay, key, value)
            ca, cb = overlay.overlay_candidates(coords, a, base, False, jobs=2, pooled=pooled)
        finally:
            for key, value in saved.items():
                setattr(overlay, key, value)
        hit = pd.MultiIndex.from_arrays([a, b]).isin(pd.MultiIndex.from_arrays([ca, cb]))
        for edit, group in pd.Series(hit).groupby(truth["edit"].to_numpy()):
            rows.append(dict(set=name, variant=label, edit=edit, kept=int(group.sum()), n=len(group)))
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fmnist-real", type=Path, required=True, help="Fashion-MNIST tree from benchmarks/fmnist.py")
    ap.add_argument("--seeds", default="0,1,3,4,5")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "out" / "copysets")
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "cache")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    real = compute_fingerprints(resolve_split(args.fmnist_real), cache=args.cache / "fp_fmnist_real.sqlite")
    parts = []
    for seed in (int(s) for s in args.seeds.split(",")):
        name = f"fmnist96-seed{seed}"
        root = copysets.build("fmnist96", args.data / name, seed=seed)
        parts.append(kept(name, Path(root), real.thumbs, args.cache))
        print(parts[-1].to_string(index=False), flush=True)
    table = pd.concat(parts).groupby(["variant", "edit"], sort=False)[["kept", "n"]].sum().reset_index()
    print(f"\nPlanted pairs kept among the 3 overlay candidates, {len(real.thumbs):,} real distractors:")
    print("| variant | edit | kept | of |\n|---|---|---|---|")
    for row in table.itertuples(index=False):
        print(f"| {row.variant} | {row.edit} | {row.kept} | {row.n} |")


if __name__ == "__main__":
    main()
