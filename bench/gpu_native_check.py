"""fluidrt on the GPU (native executor and fp32 engine, TF32 off) against Paddle Inference's CPU
output, for the models ``bench/seed_table.py prepare`` exported (weights regenerated from the
seed). Run on the GPU machine; writes ``$OUT/gpu-vs-paddle.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.seed_table import DATA, MODELS, _params_file  # noqa: E402


def main() -> None:
    import fluidrt

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for name in MODELS:
        x = np.load(DATA / name / "input.npy")
        ref = np.load(DATA / name / "paddle_ref.npy")
        row = {"model": name, "batch": int(x.shape[0]), "device": torch.cuda.get_device_name()}
        for mode in ("native", "engine-fp32"):
            cfg = fluidrt.Config(str(DATA / name / "model.json"), _params_file(name))
            cfg.enable_use_gpu(256, 0)
            if mode != "native":
                cfg.enable_engine(max_batch_size=x.shape[0])
            out = fluidrt.create_predictor(cfg).run([x])[0]
            row[f"{mode}_rel_l2"] = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
            row[f"{mode}_top1_agree"] = float(np.mean(out.argmax(1) == ref.argmax(1)))
        print(row, flush=True)
        rows.append(row)
    out = Path(os.environ.get("OUT", ".")) / "gpu-vs-paddle.json"
    out.write_text(json.dumps({"reference": "Paddle Inference 3.3.1, CPU", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
