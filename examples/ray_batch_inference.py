"""Score a directory of images with fluidrt on Ray Data and write the results as Parquet.

    python examples/ray_batch_inference.py MODEL IMAGE_DIR OUTPUT_DIR \
        [--num-actors 2] [--batch-size 16] [--gpus-per-actor 0] [--precision float32]

MODEL is a Paddle model directory or program file (``model.json`` / ``model.pdmodel``, weights
next to it) or an ``.onnx`` file. The same command runs on a laptop and on a cluster:

- no ``--address`` and no ``RAY_ADDRESS``: a local Ray instance is started for this run;
- ``--address ray://head:10001`` or ``RAY_ADDRESS=...`` (or ``auto`` on a cluster node): the job
  runs on that cluster. Every node needs fluidrt installed and the model and images at the same
  paths (a shared file system, or ``s3://`` / ``gs://`` paths that pyarrow reads); put
  ``--optim-cache-dir`` on a shared file system too, so one actor builds the engines and every
  other actor loads the plan (with a node-local directory, one actor per node builds).

Each actor (``--num-actors``) holds one predictor, built once (``fluidrt.ray.FluidPredictor``).
Output rows: ``path``, ``logits``, ``top_k_labels``, ``top_k_scores`` and the actor's
``fluidrt_*`` build counts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

log = logging.getLogger("ray_batch_inference")


def score_images(
    model: str,
    image_dir: str,
    output_dir: str,
    *,
    params: str | None = None,
    num_actors: int = 2,
    batch_size: int = 16,
    gpus_per_actor: float = 0,
    cpus_per_actor: float = 1,
    threads_per_actor: int = 0,
    precision: str = "float32",
    use_engine: bool = True,
    optim_cache_dir: str | None = None,
    image_size: int = 224,
    top_k: int = 5,
    read_blocks: int | None = None,
) -> dict[str, float]:
    """Read every image under ``image_dir``, score it, write Parquet files into ``output_dir``.
    Needs a running (or auto-started) Ray; returns ``{"images", "seconds", "images_per_s"}``."""
    import pyarrow.parquet as pq
    import ray

    from fluidrt.ray import FluidPredictor

    start = time.perf_counter()
    ds = ray.data.read_images(
        image_dir, include_paths=True, mode="RGB", override_num_blocks=read_blocks
    )
    scored = ds.map_batches(
        FluidPredictor,
        fn_constructor_kwargs={
            "model": model,
            "params": params,
            "use_engine": use_engine,
            "precision": precision,
            "max_batch_size": batch_size,
            "optim_cache_dir": optim_cache_dir,
            "num_threads": threads_per_actor,
            "image_size": (image_size, image_size),
            "top_k": top_k,
        },
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        batch_size=batch_size,
        batch_format="numpy",
    )
    scored.write_parquet(output_dir)
    seconds = time.perf_counter() - start
    images = pq.read_table(output_dir, columns=["path"]).num_rows
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds}


def _local(path: str) -> str:
    """Absolute local paths (actors may run elsewhere); URIs (``s3://...``) unchanged."""
    return path if "://" in path else os.path.abspath(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="Paddle model dir / program file, or .onnx")
    ap.add_argument("image_dir", help="directory of images (read recursively)")
    ap.add_argument("output_dir", help="directory for the Parquet files")
    ap.add_argument("--params", default=None, help="Paddle weights file, if not next to MODEL")
    ap.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster")
    ap.add_argument("--num-actors", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16, help="rows per batch (and engine max)")
    ap.add_argument("--gpus-per-actor", type=float, default=0)
    ap.add_argument("--cpus-per-actor", type=float, default=1)
    ap.add_argument("--threads-per-actor", type=int, default=0, help="0: torch's default")
    ap.add_argument("--precision", default="float32", help="float32, float16 or bfloat16")
    ap.add_argument("--no-engine", action="store_true", help="run natively, without engines")
    ap.add_argument("--optim-cache-dir", default=None, help="plan cache shared by the actors")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import ray

    ray.init(address=args.address)
    result = score_images(
        _local(args.model),
        _local(args.image_dir),
        _local(args.output_dir),
        params=_local(args.params) if args.params else None,
        num_actors=args.num_actors,
        batch_size=args.batch_size,
        gpus_per_actor=args.gpus_per_actor,
        cpus_per_actor=args.cpus_per_actor,
        threads_per_actor=args.threads_per_actor,
        precision=args.precision,
        use_engine=not args.no_engine,
        optim_cache_dir=_local(args.optim_cache_dir) if args.optim_cache_dir else None,
        image_size=args.image_size,
        top_k=args.top_k,
    )
    print(
        f"scored {result['images']} images in {result['seconds']:.1f} s "
        f"({result['images_per_s']:.1f} images/s) -> {args.output_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
