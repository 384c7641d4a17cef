"""Writes density_prior_box_ref.npz: outputs of Paddle 2.6.2's ``density_prior_box`` CPU kernel
(the op is gone from Paddle 3), the reference of ``test_density_prior_box``.

Run with Paddle 2.6 (e.g. ``python -m venv /tmp/pd26 && /tmp/pd26/bin/pip install
paddlepaddle==2.6.2``): ``/tmp/pd26/bin/python tests/ops/data/density_prior_box_ref.py``.
"""

import json
from pathlib import Path

import numpy as np
import paddle
from paddle.base.layer_helper import LayerHelper

FEAT, IMAGE = (1, 4, 5, 6), (1, 3, 43, 61)
CASES = [
    dict(
        fixed_sizes=[32.0, 64.0],
        fixed_ratios=[1.0, 2.0],
        densities=[4, 2],
        variances=[0.1, 0.1, 0.2, 0.2],
        clip=True,
    ),
    dict(
        fixed_sizes=[16.0],
        fixed_ratios=[1.0, 0.5],
        densities=[3],
        variances=[0.1, 0.2, 0.3, 0.4],
        step_w=10.0,
        step_h=12.0,
        offset=0.3,
        flatten_to_2d=True,
    ),
    dict(  # step_h 0: both steps from the image
        fixed_sizes=[20.0],
        fixed_ratios=[1.0],
        densities=[2],
        variances=[0.1, 0.1, 0.2, 0.2],
        step_w=7.0,
    ),
]


def main() -> None:
    paddle.enable_static()
    out = {"cases": np.array(json.dumps(CASES))}
    for k, attrs in enumerate(CASES):
        prog = paddle.static.Program()
        with paddle.static.program_guard(prog):
            feat = paddle.static.data("feat", list(FEAT), "float32")
            img = paddle.static.data("img", list(IMAGE), "float32")
            helper = LayerHelper("density_prior_box")
            b = helper.create_variable_for_type_inference("float32")
            v = helper.create_variable_for_type_inference("float32")
            helper.append_op(
                type="density_prior_box",
                inputs={"Input": feat, "Image": img},
                outputs={"Boxes": b, "Variances": v},
                attrs=dict(attrs),
            )
        feed = {"feat": np.zeros(FEAT, "float32"), "img": np.zeros(IMAGE, "float32")}
        out[f"boxes{k}"], out[f"vars{k}"] = paddle.static.Executor().run(
            prog, feed=feed, fetch_list=[b, v]
        )
    np.savez_compressed(Path(__file__).with_suffix(".npz"), **out)


if __name__ == "__main__":
    main()
