"""Writes multiclass_nms2_ref.npz: inputs and outputs (Out, Index) of Paddle 2.6.2's
``multiclass_nms2`` CPU kernel (the op is gone from Paddle 3), the reference of
``test_multiclass_nms2``: one case with detections, one with none kept.

Run with Paddle 2.6 (``/tmp/pd26/bin/pip install paddlepaddle==2.6.2``):
``/tmp/pd26/bin/python tests/ops/data/multiclass_nms2_ref.py``.
"""

import json
from pathlib import Path

import numpy as np
import paddle
from paddle.base.layer_helper import LayerHelper

CASES = [
    dict(score_threshold=0.3, nms_top_k=20, keep_top_k=10, nms_threshold=0.4),
    dict(score_threshold=2.0, nms_top_k=20, keep_top_k=10, nms_threshold=0.4),
]


def main() -> None:
    g = np.random.default_rng(0)
    xy = g.uniform(0, 50, (2, 30, 2))
    boxes = np.concatenate([xy, xy + g.uniform(2, 25, (2, 30, 2))], -1).astype("float32")
    scores = g.uniform(0, 1, (2, 3, 30)).astype("float32")
    paddle.enable_static()
    out = {"cases": np.array(json.dumps(CASES)), "boxes": boxes, "scores": scores}
    for k, attrs in enumerate(CASES):
        prog = paddle.static.Program()
        with paddle.static.program_guard(prog):
            b = paddle.static.data("b", list(boxes.shape), "float32")
            s = paddle.static.data("s", list(scores.shape), "float32")
            helper = LayerHelper("multiclass_nms2")
            o = helper.create_variable_for_type_inference("float32")
            i = helper.create_variable_for_type_inference("int32")
            full = {"nms_eta": 1.0, "normalized": False, "background_label": 0, **attrs}
            helper.append_op(
                type="multiclass_nms2",
                inputs={"BBoxes": b, "Scores": s},
                outputs={"Out": o, "Index": i},
                attrs=full,
            )
        res = paddle.static.Executor().run(
            prog, feed={"b": boxes, "s": scores}, fetch_list=[o, i], return_numpy=False
        )
        out[f"out{k}"], out[f"index{k}"] = (np.array(t) for t in res)
        out[f"lod{k}"] = np.array(res[0].lod()[0] if res[0].lod() else [], np.int64)
    np.savez_compressed(Path(__file__).with_suffix(".npz"), **out)


if __name__ == "__main__":
    main()
