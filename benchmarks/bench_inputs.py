"""Issue 18 benchmark row: the real Fashion-MNIST 60k/10k split scanned as a Hugging Face
``DatasetDict`` (PNG bytes in an ``Image`` feature, ``ClassLabel`` labels) and as the class
folders written by ``benchmarks/fmnist.py``: same pairs, and the time of each, in one run.

    python benchmarks/fmnist.py /work/data/fmnist          # once: folders + arrays.npz
    python benchmarks/bench_inputs.py /work/data/fmnist [--json out.json]

Both scans run without the fingerprint cache (``cache=False``), so the DatasetDict run pays for
writing its image store (a temporary folder) as well as for the scan.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from fmnist import CLASSES  # noqa: E402


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, "L").save(buf, "PNG")
    return buf.getvalue()


def build_dataset_dict(arrays):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    parts = {}
    for split, name in (("train", "train"), ("val", "test")):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        rows = {"image": [{"bytes": png_bytes(img), "path": None} for img in x], "label": y.tolist()}
        parts[name] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(parts)


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="folder written by benchmarks/fmnist.py")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import splitaudit

    arrays = np.load(args.root / "arrays.npz")
    dd, build_s, _ = timed(build_dataset_dict, arrays)
    folder, folder_wall, folder_cpu = timed(splitaudit.scan, args.root, embed="none", cache=False, jobs=args.jobs)
    hf, hf_wall, hf_cpu = timed(splitaudit.scan, dd, embed="none", cache=False, jobs=args.jobs)

    def index_pairs(result):  # ids such as "test[123]": the row in its split
        out = set()
        for v, t, kind in zip(result.pairs["val_path"], result.pairs["train_path"], result.pairs["kind"]):
            out.add((int(re.search(r"\[(\d+)\]", v).group(1)), int(re.search(r"\[(\d+)\]", t).group(1)), kind))
        return out

    def folder_pairs(result):  # folder rows are sorted by class folder: map back to array order
        out = set()
        for v, t, kind in zip(result.pairs["val_path"], result.pairs["train_path"], result.pairs["kind"]):
            out.add((int(Path(v).stem), int(Path(t).stem), kind))
        return out

    same = folder_pairs(folder) == index_pairs(hf)
    report = {"n_images": int(len(arrays["x_train"]) + len(arrays["x_val"])),
              "dataset_dict_build_s": build_s,
              "folder": {"wall_s": folder_wall, "cpu_s": folder_cpu, "n_pairs": int(len(folder.pairs))},
              "dataset_dict": {"wall_s": hf_wall, "cpu_s": hf_cpu, "n_pairs": int(len(hf.pairs))},
              "same_pairs": bool(same), "ratio_wall": hf_wall / folder_wall}
    print(f"| input | cross pairs | scan wall s | CPU s |\n|---|---|---|---|\n"
          f"| class folders | {len(folder.pairs)} | {folder_wall:.1f} | {folder_cpu:.1f} |\n"
          f"| DatasetDict (PNG bytes) | {len(hf.pairs)} | {hf_wall:.1f} | {hf_cpu:.1f} |\n\n"
          f"same pairs: {same}; DatasetDict / folders: {hf_wall / folder_wall:.2f}x wall "
          f"(building the DatasetDict in memory, not timed in the scan: {build_s:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
