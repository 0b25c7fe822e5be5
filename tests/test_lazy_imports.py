"""Heavy optional dependencies load only when used: a default scan imports neither
torch nor dask (so `pip install splitaudit` without extras works). faiss and OpenCV are core
dependencies since keypoint copy detection is the default."""

import subprocess
import sys
import textwrap


def test_default_scan_imports_no_heavy_dependency(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from PIL import Image
        root = {str(tmp_path)!r}
        import os
        for split in ("train", "val"):
            os.makedirs(os.path.join(root, split), exist_ok=True)
            for i in range(6):
                arr = np.random.default_rng(i + (split == "val") * 10).integers(0, 255, (16, 16), np.uint8)
                Image.fromarray(arr).resize((48, 48)).save(os.path.join(root, split, f"{{i}}.png"))
        import splitaudit
        result = splitaudit.scan(root, cache=False, jobs=1)
        assert len(result.findings) == 7
        print(sorted(m for m in ("torch", "dask", "distributed") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
