"""Export PaddleDetection / PaddleSeg models with seeded random weights, plus Paddle Inference
reference outputs, at two input resolutions each.

The detection/segmentation counterpart of ``tools/export_models.py`` (same cache layout, status
files and BatchNorm randomisation; its helpers are reused). Each (model, resolution, format) is
exported by ``paddle.jit.save`` in a fresh subprocess into::

    <out>/<fmt>/<name>_<size>/model.json | model.pdmodel   the program
    <out>/<fmt>/<name>_<size>/model.pdiparams              the weights
    <out>/<fmt>/<name>_<size>/config.yml                   the ppdet config (detection only)
    <out>/<fmt>/<name>_<size>/ref.npz                      inputs in_<feed name>; Paddle
                                                           Inference outputs out_<i>
    <out>/<fmt>/<name>_<size>/status.json                  {"ok", "error", "boxes", ...}

Detection models are built from ppdet's own config/arch classes (``ppdet.core.workspace.create``
on a config mirroring PaddleDetection's ``configs/*/_base_/*.yml``, ResNet18 / MobileNetV1
backbones to keep exports fast) and exported the way PaddleDetection's ``tools/export_model.py``
does: inputs ``image``, ``im_shape``, ``scale_factor``, with post-process (box decode + NMS) in
the program; outputs ``bbox`` ([N, 6] rows label, score, x1, y1, x2, y2), ``bbox_num`` and, for
Mask R-CNN, ``mask``. Random weights score boxes alike, so the NMS score threshold is not
PaddleDetection's: an eager pass on the seeded input with threshold 0 ranks the kept boxes, and
the threshold goes in the widest score gap between the 20th and 40th box (``TARGET_BOXES``),
so the reference keeps a meaningful number of boxes that fp32 noise cannot push across it; the
threshold and counts are in ``status.json``. Segmentation models come from ``paddleseg.models``
and are exported as PaddleSeg's ``tools/export.py --output_op none`` does: one input ``x``,
the logits out.

Four compatibility shims, all confined to the export worker process:

- ppdet 2.6 imports ``pkg_resources`` (only for ``resource_filename``), which setuptools >= 81
  no longer ships; a module object with that one function is put in ``sys.modules`` before
  ppdet is imported (nothing is installed, nothing else sees it).
- ppdet 2.6 builds ``multiclass_nms3`` / ``prior_box`` / ``box_coder`` / ``generate_proposals``
  / ``distribute_fpn_proposals`` / ``matrix_nms`` with ``LayerHelper.append_op``, which only the
  legacy static graph accepts. For PIR exports those ``ppdet.modeling.ops`` functions are
  replaced by Paddle 3's own PIR-aware calls of the same ops (``paddle.vision.ops`` wrappers,
  ``paddle._C_ops.multiclass_nms3``), same attributes, same outputs.
- ppdet's R-CNN heads loop ``for i in range(batch_size)`` over a 1-element tensor; Paddle's
  ``Tensor.__index__`` does ``int(np.array(t))``, which numpy 2 refuses for 1-d arrays. Eager
  passes (BatchNorm calibration, threshold tuning) get ``__index__ = int(t.item())``, what
  numpy 1 did; the exported program is unaffected (dy2static turns the loop into ``while``).
- ppdet 2.6 predates Paddle's 0-d tensors: its RPN returns ``rois_num`` as the 0-d
  ``paddle.shape(rois)[0]``, which the R-CNN heads then index; ``RPNHead._gen_proposal`` gets a
  wrapper reshaping it to [1], what it was in Paddle 2.4; and its box post-process
  ``paddle.concat``s 0-d scale factors, so ``paddle.concat`` reshapes 0-d inputs to [1] first.

Usage::

    python tools/export_detection_models.py --models all --formats pir,pdmodel
    python tools/export_detection_models.py --models yolov3_mobilenet_v1 --sizes 320
    python tools/export_detection_models.py --list

Needs ``pip install --no-deps paddledet==2.6.0 paddleseg==2.8.0`` plus the plain imports in
``requirements-dev.txt`` (pycocotools, typeguard, shapely, terminaltables, six, filelock).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_models as base  # noqa: E402 - the sibling tool, for its helpers

DEFAULT_OUT = base.DEFAULT_OUT
FORMATS = base.FORMATS
# Bump when the export recipe changes, so cached exports are redone.
RECIPE = 4
NUM_CLASSES = 80

# name -> (source, input sizes)
MODELS: dict[str, tuple[str, tuple[int, int]]] = {
    "yolov3_mobilenet_v1": ("ppdet", (320, 416)),
    "ssd_mobilenet_v1": ("ppdet", (300, 384)),
    "faster_rcnn_r18_fpn": ("ppdet", (320, 416)),
    "mask_rcnn_r18_fpn": ("ppdet", (320, 416)),
    "retinanet_r18_fpn": ("ppdet", (320, 416)),
    # the same model exported with the batch fixed to 1 (see STATIC_BATCH)
    "retinanet_r18_fpn_b1": ("ppdet", (320, 416)),
    "pp_liteseg_stdc1": ("paddleseg", (256, 384)),
    "deeplabv3p_resnet18_vd": ("paddleseg", (256, 384)),
}
# Exported with batch 1 instead of PaddleDetection's dynamic batch: ppdet's RetinaHead loops over
# the images, which dy2static turns into a while loop over tensor arrays for a dynamic batch
# (exported as is under "retinanet_r18_fpn") and unrolls for a fixed one.
STATIC_BATCH = {"retinanet_r18_fpn_b1": 1}
# ppdet config of each model (the _b1 variants share their model's)
CONFIG_OF = {"retinanet_r18_fpn_b1": "retinanet_r18_fpn"}
# Detection: the NMS score threshold is set so that the seeded input keeps about this many boxes,
# in the widest score gap of this range (so fp32 noise cannot move a box across it).
TARGET_BOXES = (20, 40)

_RCNN = """
{arch}:
  backbone: ResNet
  neck: FPN
  rpn_head: RPNHead
  bbox_head: BBoxHead
  bbox_post_process: BBoxPostProcess
{mask}
ResNet:
  depth: 18
  norm_type: bn
  freeze_at: -1
  freeze_norm: false
  return_idx: [0, 1, 2, 3]
  num_stages: 4
FPN:
  out_channel: 128
RPNHead:
  anchor_generator:
    aspect_ratios: [0.5, 1.0, 2.0]
    anchor_sizes: [[32], [64], [128], [256], [512]]
    strides: [4, 8, 16, 32, 64]
  rpn_target_assign:
    batch_size_per_im: 256
    fg_fraction: 0.5
    negative_overlap: 0.3
    positive_overlap: 0.7
    use_random: true
  train_proposal:
    min_size: 0.0
    nms_thresh: 0.7
    pre_nms_top_n: 2000
    post_nms_top_n: 1000
    topk_after_collect: true
  test_proposal:
    min_size: 0.0
    nms_thresh: 0.7
    pre_nms_top_n: 1000
    post_nms_top_n: 1000
BBoxHead:
  head: TwoFCHead
  roi_extractor:
    resolution: 7
    sampling_ratio: 0
    aligned: true
  bbox_assigner: BBoxAssigner
BBoxAssigner:
  batch_size_per_im: 512
  bg_thresh: 0.5
  fg_thresh: 0.5
  fg_fraction: 0.25
  use_random: true
TwoFCHead:
  out_channel: 256
BBoxPostProcess:
  decode: RCNNBox
  nms:
    name: MultiClassNMS
    keep_top_k: 100
    score_threshold: 0.0
    nms_threshold: 0.5
"""

_MASK = """  mask_head: MaskHead
  mask_post_process: MaskPostProcess
MaskHead:
  head: MaskFeat
  roi_extractor:
    resolution: 14
    sampling_ratio: 0
    aligned: true
  mask_assigner: MaskAssigner
  share_bbox_feat: false
MaskAssigner:
  mask_resolution: 28
MaskFeat:
  num_convs: 2
  out_channel: 64
MaskPostProcess:
  binary_thresh: 0.5
"""

# ppdet configs, after PaddleDetection's configs/<family>/_base_/*.yml
PPDET_CONFIGS: dict[str, str] = {
    "yolov3_mobilenet_v1": """
architecture: YOLOv3
YOLOv3:
  backbone: MobileNet
  neck: YOLOv3FPN
  yolo_head: YOLOv3Head
  post_process: BBoxPostProcess
MobileNet:
  scale: 1
  feature_maps: [4, 6, 13]
  with_extra_blocks: false
  extra_block_filters: []
YOLOv3Head:
  anchors: [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90],
            [156, 198], [373, 326]]
  anchor_masks: [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
  loss: YOLOv3Loss
YOLOv3Loss:
  ignore_thresh: 0.7
  downsample: [32, 16, 8]
  label_smooth: false
BBoxPostProcess:
  decode:
    name: YOLOBox
    conf_thresh: 0.005
    downsample_ratio: 32
    clip_bbox: true
  nms:
    name: MultiClassNMS
    keep_top_k: 100
    score_threshold: 0.0
    nms_threshold: 0.45
    nms_top_k: 1000
""",
    "ssd_mobilenet_v1": """
architecture: SSD
SSD:
  backbone: MobileNet
  ssd_head: SSDHead
  post_process: BBoxPostProcess
MobileNet:
  norm_decay: 0.
  scale: 1
  extra_block_filters: [[256, 512], [128, 256], [128, 256], [64, 128]]
  with_extra_blocks: true
  feature_maps: [11, 13, 14, 15, 16, 17]
SSDHead:
  kernel_size: 1
  padding: 0
  anchor_generator:
    steps: [0, 0, 0, 0, 0, 0]
    aspect_ratios: [[2.], [2., 3.], [2., 3.], [2., 3.], [2., 3.], [2., 3.]]
    min_ratio: 20
    max_ratio: 90
    base_size: 300
    min_sizes: [60.0, 105.0, 150.0, 195.0, 240.0, 285.0]
    max_sizes: [[], 150.0, 195.0, 240.0, 285.0, 300.0]
    offset: 0.5
    flip: true
    min_max_aspect_ratios_order: false
BBoxPostProcess:
  decode:
    name: SSDBox
    use_fuse_decode: true
  nms:
    name: MultiClassNMS
    keep_top_k: 200
    score_threshold: 0.0
    nms_threshold: 0.45
    nms_top_k: 400
    nms_eta: 1.0
""",
    # export_onnx: ppdet's single-image export path for R-CNNs (no per-image while loop, whose
    # dy2static form ppdet 2.6 cannot build under Paddle 3: 0-d rois_num indexing); it appends
    # one fixed [0, 0, 0, 0, 1, 1] row to ``bbox`` and counts it in ``bbox_num``
    "faster_rcnn_r18_fpn": "architecture: FasterRCNN\nexport_onnx: true\n"
    + _RCNN.replace("{arch}", "FasterRCNN").replace("{mask}", ""),
    "mask_rcnn_r18_fpn": "architecture: MaskRCNN\nexport_onnx: true\n"
    + _RCNN.replace("{arch}", "MaskRCNN").replace("{mask}", _MASK),
    "retinanet_r18_fpn": """
architecture: RetinaNet
RetinaNet:
  backbone: ResNet
  neck: FPN
  head: RetinaHead
ResNet:
  depth: 18
  variant: b
  norm_type: bn
  freeze_at: -1
  freeze_norm: false
  return_idx: [1, 2, 3]
  num_stages: 4
FPN:
  out_channel: 128
  spatial_scales: [0.125, 0.0625, 0.03125]
  extra_stage: 2
  has_extra_convs: true
  use_c5: false
RetinaHead:
  conv_feat:
    name: RetinaFeat
    feat_in: 128
    feat_out: 128
    num_convs: 2
    norm_type: null
    use_dcn: false
  anchor_generator:
    name: RetinaAnchorGenerator
    octave_base_scale: 4
    scales_per_octave: 3
    aspect_ratios: [0.5, 1.0, 2.0]
    strides: [8.0, 16.0, 32.0, 64.0, 128.0]
  bbox_assigner:
    name: MaxIoUAssigner
    positive_overlap: 0.5
    negative_overlap: 0.4
    allow_low_quality: true
  loss_class:
    name: FocalLoss
    gamma: 2.0
    alpha: 0.25
    loss_weight: 1.0
  loss_bbox:
    name: SmoothL1Loss
    beta: 0.0
    loss_weight: 1.0
  nms:
    name: MultiClassNMS
    nms_top_k: 1000
    keep_top_k: 100
    score_threshold: 0.0
    nms_threshold: 0.5
""",
}


def export_name(name: str, size: int) -> str:
    return f"{name}_{size}"


def cases(names: list[str] | None = None) -> list[tuple[str, int]]:
    """(model, size) pairs, in table order."""
    return [(n, s) for n in names or list(MODELS) for s in MODELS[n][1]]


def model_dir(name: str, size: int, fmt: str, out: Path | str = DEFAULT_OUT) -> Path:
    return base.model_dir(export_name(name, size), fmt, out)


def model_files(name: str, size: int, fmt: str, out: Path | str = DEFAULT_OUT) -> tuple[Path, Path]:
    return base.model_files(export_name(name, size), fmt, out)


def read_status(name: str, size: int, fmt: str, out: Path | str = DEFAULT_OUT) -> dict | None:
    return base.read_status(export_name(name, size), fmt, out)


def _is_done(name: str, size: int, fmt: str, out: Path) -> bool:
    st = read_status(name, size, fmt, out)
    if st is None or st.get("recipe") != RECIPE:
        return False
    if not st["ok"]:
        return st.get("stage") == "export"  # Paddle cannot export it: recorded, not retried
    prog, params = model_files(name, size, fmt, out)
    ref = model_dir(name, size, fmt, out) / "ref.npz"
    return prog.is_file() and params.is_file() and ref.is_file()


def ensure_model(
    name: str,
    size: int,
    fmt: str,
    out: Path | str = DEFAULT_OUT,
    force: bool = False,
    timeout: float = 900,
) -> dict:
    """Export ``name`` at ``size`` in ``fmt`` with references unless cached; its status dict."""
    if name not in MODELS or size not in MODELS[name][1]:
        known = ", ".join(f"{n}@{s}" for n, s in cases())
        raise KeyError(f"unknown model/size {name}@{size}; known: {known}")
    if fmt not in FORMATS:
        raise KeyError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    out = Path(out)
    if not force and _is_done(name, size, fmt, out):
        return read_status(name, size, fmt, out)
    d = model_dir(name, size, fmt, out)
    d.parent.mkdir(parents=True, exist_ok=True)
    with open(d.parent / f".{d.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_done(name, size, fmt, out):
            return read_status(name, size, fmt, out)
        return _export(name, size, fmt, out, timeout)


def _export(name: str, size: int, fmt: str, out: Path, timeout: float) -> dict:
    d = model_dir(name, size, fmt, out)
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.iterdir():
        stale.unlink()
    env = dict(os.environ, FLAGS_enable_pir_api="1" if fmt == "pir" else "0")
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", f"{name}@{size}"]
    cmd += ["--formats", fmt, "--out", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        tail, rc = (proc.stdout + proc.stderr)[-4000:], proc.returncode
    except subprocess.TimeoutExpired:
        tail, rc = f"timed out after {timeout:.0f}s", -1
    st = read_status(name, size, fmt, out)
    if st is None:  # the worker died before writing its status
        st = {
            "model": name,
            "size": size,
            "format": fmt,
            "recipe": RECIPE,
            "ok": False,
            "stage": "worker",
            "error": f"export worker exited with {rc}:\n{tail}",
        }
        (d / "status.json").write_text(json.dumps(st, indent=1))
    st["wall_s"] = round(time.perf_counter() - t0, 2)
    return st


# ---- the worker (a fresh process per model, size and format) --------------------------------
def _install_pkg_resources_shim() -> None:
    """ppdet imports ``pkg_resources`` for ``resource_filename`` only (see the module doc)."""
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources"):
        return

    def resource_filename(package: str, resource: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"resource_filename: no package {package!r}")
        return os.path.join(list(spec.submodule_search_locations)[0], resource)

    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = resource_filename
    sys.modules["pkg_resources"] = shim


def _pir_multiclass_nms(
    bboxes,
    scores,
    score_threshold: float,
    nms_top_k: int,
    keep_top_k: int,
    nms_threshold: float = 0.3,
    normalized: bool = True,
    nms_eta: float = 1.0,
    background_label: int = -1,
    return_index: bool = False,
    return_rois_num: bool = True,
    rois_num=None,
    name: str | None = None,
):
    """ppdet.modeling.ops.multiclass_nms for PIR: the same multiclass_nms3 op and attributes."""
    import paddle

    out, index, nms_rois_num = paddle._C_ops.multiclass_nms3(
        bboxes,
        scores,
        rois_num,
        score_threshold,
        nms_top_k,
        keep_top_k,
        nms_threshold,
        normalized,
        nms_eta,
        background_label,
    )
    return out, nms_rois_num if return_rois_num else None, index if return_index else None


def _patch_tensor_index() -> None:
    """``Tensor.__index__`` of a 1-element tensor under numpy 2 (see the module doc)."""
    import paddle

    paddle.Tensor.__index__ = lambda t: int(t.item())


def _patch_concat_0d() -> None:
    """``paddle.concat`` of 0-d tensors as in Paddle 2.4 (see the module doc)."""
    import paddle

    concat = paddle.concat

    def concat_0d(x, axis=0, name=None):
        if isinstance(x, (list, tuple)):
            x = [paddle.reshape(t, [1]) if len(t.shape) == 0 else t for t in x]
        return concat(x, axis=axis, name=name)

    paddle.concat = paddle.jit.not_to_static(concat_0d)


def _patch_rpn_rois_num_0d() -> None:
    """RPN ``rois_num`` as the 1-element tensor it was in Paddle 2.4 (see the module doc)."""
    import paddle
    from ppdet.modeling.proposal_generator.rpn_head import RPNHead

    gen_proposal = RPNHead._gen_proposal

    def gen_proposal_1d(self, *args, **kwargs):
        rois, rois_num = gen_proposal(self, *args, **kwargs)
        if len(rois_num.shape) == 0:
            rois_num = paddle.reshape(rois_num, [1])
        return rois, rois_num

    # plain op calls: dy2static runs it as is (ppdet's export_onnx path has no data-dependent
    # Python control flow)
    RPNHead._gen_proposal = paddle.jit.not_to_static(gen_proposal_1d)


def _patch_ppdet_ops_for_pir() -> None:
    """Route ppdet's legacy-only op builders to Paddle 3's PIR-aware ones (see the module doc)."""
    import paddle
    import paddle.vision.ops as vops
    from ppdet.modeling import ops

    ops.multiclass_nms = paddle.jit.not_to_static(_pir_multiclass_nms)
    for fn in ("prior_box", "box_coder", "generate_proposals", "distribute_fpn_proposals"):
        setattr(ops, fn, getattr(vops, fn))
    ops.matrix_nms = vops.matrix_nms


def _ppdet_model(name: str, d: Path):
    import paddle

    _install_pkg_resources_shim()
    _patch_tensor_index()
    from ppdet.core.workspace import create, load_config

    _patch_rpn_rois_num_0d()
    _patch_concat_0d()

    if paddle.framework.in_pir_mode() or os.environ.get("FLAGS_enable_pir_api") == "1":
        _patch_ppdet_ops_for_pir()
    text = f"num_classes: {NUM_CLASSES}\nnorm_type: bn\n" + PPDET_CONFIGS[CONFIG_OF.get(name, name)]
    cfg_file = d / "config.yml"
    cfg_file.write_text(text)
    cfg = load_config(str(cfg_file))
    paddle.seed(0)
    return create(cfg.architecture)


class _SegExport:
    """Factory for PaddleSeg's export wrapper with ``--output_op none`` (logits out)."""

    @staticmethod
    def build(name: str):
        import paddle
        import paddleseg.models as pm
        from paddleseg.models import backbones

        paddle.seed(0)
        if name == "pp_liteseg_stdc1":
            model = pm.PPLiteSeg(num_classes=19, backbone=backbones.STDC1())
        elif name == "deeplabv3p_resnet18_vd":
            model = pm.DeepLabV3P(num_classes=19, backbone=backbones.ResNet18_vd(output_stride=8))
        else:
            raise KeyError(name)

        class SavedSegmentationNet(paddle.nn.Layer):
            def __init__(self, net: paddle.nn.Layer) -> None:
                super().__init__()
                self.model = net

            def forward(self, x):
                return self.model(x)[0]

        return SavedSegmentationNet(model)


def det_inputs(size: int, batch: int = 1, seed: int = 1234) -> dict[str, object]:
    """A seeded normal image batch with PaddleDetection's ``im_shape`` / ``scale_factor``."""
    import numpy as np

    x = np.random.RandomState(seed).standard_normal((batch, 3, size, size)).astype("float32")
    return {
        "image": x,
        "im_shape": np.full((batch, 2), size, "float32"),
        "scale_factor": np.ones((batch, 2), "float32"),
    }


def build_model(name: str, size: int, d: Path):
    """The model with seeded random weights and calibrated BatchNorm statistics, in eval mode."""
    import paddle

    source = MODELS[name][0]
    if source == "ppdet":
        model = _ppdet_model(name, d)
        calib = {k: paddle.to_tensor(v) for k, v in det_inputs(size, 1, seed=99).items()}

        def calibrate() -> object:
            return model(dict(calib))
    else:
        import numpy as np

        model = _SegExport.build(name)
        x = np.random.RandomState(99).standard_normal((2, 3, size, size)).astype("float32")

        def calibrate() -> object:
            return model(paddle.to_tensor(x))

    model.eval()
    base.randomize_batchnorm(model, calibrate)
    return model


def tune_score_threshold(model, feeds: dict) -> dict:
    """Set the model's NMS ``score_threshold`` from an eager pass (see ``TARGET_BOXES``)."""
    import numpy as np
    import paddle

    # ppdet's MultiClassNMS is a plain object (passes its __dict__ as the op attributes), held
    # by a head layer or by a plain post-process object
    owners = list(model.sublayers(include_self=True))
    owners += [v for m in owners for v in vars(m).values() if hasattr(v, "nms")]
    holders = [m for m in owners if hasattr(getattr(m, "nms", None), "score_threshold")]
    if not holders:
        raise RuntimeError(f"{type(model).__name__}: no NMS with a score_threshold found")
    with paddle.no_grad():
        out = model({k: paddle.to_tensor(v) for k, v in feeds.items()})
    scores = np.sort(out["bbox"].numpy()[:, 1].astype("float64"))[::-1]
    lo, hi = TARGET_BOXES
    if len(scores) <= lo:
        raise RuntimeError(f"only {len(scores)} boxes at score threshold 0, want over {lo}")
    hi = min(hi, len(scores) - 1)
    gaps = scores[lo - 1 : hi] - scores[lo : hi + 1]
    k = lo - 1 + int(np.argmax(gaps))
    thresh = float((scores[k] + scores[k + 1]) / 2)
    for m in holders:
        m.nms.score_threshold = thresh
    return {"score_threshold": thresh, "score_gap": float(scores[k] - scores[k + 1])}


def _paddle_reference(prog: Path, params: Path, feeds: dict) -> tuple[list[str], list]:
    """Paddle Inference (CPU, 2 threads) outputs; returns (feed order, outputs)."""
    import paddle.inference as pi

    sys.path.insert(0, str(base.REPO))
    from tests.support.paddle_ref import paddle_infer

    cfg = pi.Config(str(prog), str(params))
    cfg.disable_gpu()
    # oneDNN off: Paddle 3.3's oneDNN conv fusion pass segfaults on these PIR programs
    cfg.disable_mkldnn()
    cfg.disable_glog_info()
    names = pi.create_predictor(cfg).get_input_names()
    return names, paddle_infer(str(prog), str(params), [feeds[n] for n in names], onednn=False)


def _save_pruned(model, path: str, spec: list) -> None:
    """``paddle.jit.save``; for a detection spec, drop the ``im_shape`` / ``scale_factor`` feeds
    the program does not use (ppdet's exporter prunes them too; Paddle refuses unused feeds)."""
    import itertools

    import paddle

    optional = [k for k in ("im_shape", "scale_factor") if isinstance(spec[0], dict)]
    drops = [()] + [c for r in (1, 2) for c in itertools.combinations(optional, r)]
    static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
    for i, drop in enumerate(drops):
        pruned = [{k: v for k, v in spec[0].items() if k not in drop}] if drop else spec
        try:
            paddle.jit.save(static, path, input_spec=pruned)
            return
        except ValueError as exc:
            if "not involved in the target_vars" not in str(exc) or i == len(drops) - 1:
                raise


def worker(name: str, size: int, fmt: str, out: Path) -> int:
    import traceback

    import numpy as np

    d = model_dir(name, size, fmt, out)
    d.mkdir(parents=True, exist_ok=True)
    status: dict = {"model": name, "size": size, "format": fmt, "recipe": RECIPE, "ok": False}
    stage = "import"
    try:
        import paddle
        from paddle.static import InputSpec

        status["paddle"] = paddle.__version__
        stage = "build"
        t0 = time.perf_counter()
        model = build_model(name, size, d)
        status["build_s"] = round(time.perf_counter() - t0, 2)
        stage = "export"
        if MODELS[name][0] == "ppdet":
            feeds = det_inputs(size)
            status.update(tune_score_threshold(model, feeds))
            batch = STATIC_BATCH.get(name)
            status["batch"] = batch or "dynamic"
            spec = [
                {
                    "image": InputSpec([batch, 3, size, size], "float32", "image"),
                    "im_shape": InputSpec([batch, 2], "float32", "im_shape"),
                    "scale_factor": InputSpec([batch, 2], "float32", "scale_factor"),
                }
            ]
        else:
            x = np.random.RandomState(1234).standard_normal((1, 3, size, size))
            feeds = {"x": x.astype("float32")}
            spec = [InputSpec([None, 3, size, size], "float32", "x")]
        _save_pruned(model, str(d / "model"), spec)
        prog, params = model_files(name, size, fmt, out)
        if not prog.is_file():
            found = sorted(p.name for p in d.iterdir())
            raise RuntimeError(f"paddle.jit.save wrote {found}, expected {prog.name}")
        status["export_s"] = round(time.perf_counter() - t0, 2)
        status["program_bytes"] = prog.stat().st_size
        stage = "reference"
        t0 = time.perf_counter()
        feed_names, outs = _paddle_reference(prog, params, feeds)
        data = {f"in_{n}": feeds[n] for n in feed_names}
        data.update({f"out_{i}": o for i, o in enumerate(outs)})
        status["inputs"] = feed_names
        status["num_outputs"] = len(outs)
        status["out_shapes"] = [list(o.shape) for o in outs]
        status["out_dtypes"] = [str(o.dtype) for o in outs]
        if MODELS[name][0] == "ppdet":
            status["boxes"] = int(outs[0].shape[0])
            status["labels"] = len({int(v) for v in outs[0][:, 0]}) if outs[0].size else 0
        tmp = d / "ref.tmp.npz"
        np.savez(tmp, **data)
        tmp.replace(d / "ref.npz")
        status["ref_s"] = round(time.perf_counter() - t0, 2)
        status["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - record everything, including SystemExit
        status["stage"] = stage
        status["error"] = f"{type(exc).__name__}: {exc}"
        status["traceback"] = traceback.format_exc(limit=8)[-6000:]
    tmp = d / "status.tmp.json"
    tmp.write_text(json.dumps(status, indent=1))
    tmp.replace(d / "status.json")
    return 0 if status["ok"] else 1


# ---- CLI ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--sizes", default="", help="comma-separated input sizes (default: both)")
    ap.add_argument("--formats", default="pir,pdmodel", help="comma-separated: pir,pdmodel")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"cache dir (default {DEFAULT_OUT})")
    ap.add_argument("--force", action="store_true", help="export again even when cached")
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    ap.add_argument("--worker", metavar="MODEL@SIZE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.list:
        for n, (src, sizes) in MODELS.items():
            print(f"{n:24s} {src:9s} sizes {sizes}")
        return 0
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.worker:
        name, size = args.worker.split("@")
        return worker(name, int(size), formats[0], Path(args.out))
    names = list(MODELS) if args.models == "all" else args.models.split(",")
    sizes = {int(s) for s in args.sizes.split(",") if s.strip()}
    todo = [(n, s) for n, s in cases(names) if not sizes or s in sizes]
    failures = 0
    t_all = time.perf_counter()
    for name, size in todo:
        for fmt in formats:
            t0 = time.perf_counter()
            st = ensure_model(name, size, fmt, args.out, force=args.force)
            took = time.perf_counter() - t0
            what = f"{fmt:8s} {export_name(name, size):28s} {took:6.1f}s"
            if st["ok"]:
                boxes = f", {st['boxes']} boxes" if "boxes" in st else ""
                print(f"ok    {what}  outputs {st['out_shapes']}{boxes}", flush=True)
            else:
                failures += 1
                print(f"FAIL  {what}  {base.error_line(st)}", flush=True)
    print(
        f"{len(todo) * len(formats) - failures} exported, {failures} failed "
        f"(details in <out>/<fmt>/<model>_<size>/status.json) in {time.perf_counter() - t_all:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
