"""The demo: the main job on embedded defaults — local Ray, local folders, a local MLflow store — offline.

It takes scikit-image's bundled sample photos, writes "archive" copies of them as JPEG files (downscaled
for enhance, grayscale for colorize), runs the real batch pipelines (Ray Data, with their Parquet
manifests) over those folders, generates new images (a grid of seeds, a truncation sweep, latent walks), runs a
short training job on Ray Train
logged to an MLflow store inside the output folder, and writes ``index.html`` with before / after /
original side by side and PSNR against the naive baseline (bicubic upscaling, the gray image itself).

One local Ray instance serves every stage; nothing is written outside the output folder::

    OUT/originals/      the sample photos (the references, and the training run's validation images)
    OUT/archive/        enhance/*.jpg (small), colorize/*.jpg (gray): the batch inputs
    OUT/baseline/       the archive copies upscaled naively (bicubic)
    OUT/enhanced/       OUT/colorized/: the batch outputs, each with _pixelplexus/manifest-*.parquet
    OUT/generated/      samples.png, truncation.png, interpolation.png: new images
    OUT/training/       patches/ of the photos (the training data) and the run's last samples.png
    OUT/mlflow.db       OUT/mlruns/: the MLflow store; OUT/ray_results/: Ray Train's checkpoints
"""

from __future__ import annotations

import html
import io
import os
import shutil
import string
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from pixelplexus.config import TASK_NAMES, TaskConfig, shipped_config
from pixelplexus.io.images import ImageRecord, read_image_file, write_image_file
from pixelplexus.metrics import psnr
from pixelplexus.options import parse_options
from pixelplexus.photos import PHOTOS, sample_photos
from pixelplexus.references import ModelReferenceError, ResolvedModel, bundled_models, resolve_model
from pixelplexus.tasks import inference_task
from pixelplexus.tasks.generate import TRUNCATION_SWEEP
from pixelplexus.transforms import archive_copy, resize
from pixelplexus.visual import as_rgb8

EXPERIMENT = "pixelplexus-demo"
DEMO_DEFAULTS = {"enhance": "enhance-x4-archive"}
"""The demo's inputs are archive copies: the bundled model made for those, where installed."""
JPEG_QUALITY = 40  # an archive copy: visibly compressed
SCORES = ("bicubic", "enhance", "gray", "colorize")  # PSNRs per photo: baseline and output of each task
SHEETS = {
    "rows": 4,
    "columns": 8,
    "sweep_seeds": 4,
    "walks": 2,
    "walk_steps": 8,
}  # GenerateTask.sample_sheets
PAGE_TEMPLATE = "templates/demo.html"  # package data: the page, with ``string.Template`` placeholders

Log = Callable[[str], None]


@dataclass
class TrainingSummary:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    samples: Path | None  # the run's last sample grid, copied into the output folder


@dataclass
class DemoResult:
    out_dir: Path
    page: Path
    tracking_uri: str
    training: TrainingSummary
    scores: dict[str, dict[str, float]]  # photo → PSNRs (bicubic, enhance, gray, colorize)
    stages: dict[str, float]  # stage → seconds
    seconds: float


def archive_jpegs(
    image: np.ndarray, *, factor: int = 4, quality: int = JPEG_QUALITY, seed: int = 0
) -> tuple[bytes, bytes]:
    """A small JPEG (for enhance) and a grayscale JPEG (for colorize), as an old scan might be: the demo's
    files. The small one is damaged as the archive measurements' copies are (:func:`pixelplexus.transforms.
    archive_copy`'s blur and sensor noise, drawn from ``seed``), then saved once as JPEG ``quality``."""
    small = archive_copy(image, factor, seed, jpeg=False)
    gray = Image.fromarray(image).convert("L")
    buffers = []
    for pil in (Image.fromarray(small), gray):
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=quality)
        buffers.append(buffer.getvalue())
    return buffers[0], buffers[1]


def resolve_models(models: Mapping[str, str] | None = None) -> dict[str, ResolvedModel]:
    """Task → checked model: ``models`` where given, else the bundled default. Raises before any work."""
    models = dict(models or {})
    unknown = sorted(set(models) - set(TASK_NAMES))
    if unknown:
        raise ModelReferenceError(
            f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASK_NAMES)}"
        )
    for task, name in DEMO_DEFAULTS.items():
        if task not in models and name in bundled_models():
            models[task] = name
    return {task: resolve_model(models.get(task), task) for task in TASK_NAMES}


def training_config(scale: int, steps: int) -> TaskConfig:
    """The tiny enhance config (``configs/enhance-tiny.yaml``) at ×``scale`` for ``steps`` steps, half of
    them generator-only: it trains in about a minute on two CPU cores and shows the training job and its
    MLflow run, not a useful model."""
    return shipped_config("enhance-tiny").override(
        **{
            "generator.args.upscale": scale,
            "crop_size": 16 * scale,
            "generator_only_steps": steps // 2,
            "train.max_steps": steps,
            "train.log_every": max(1, steps // 4),
            "train.eval_every": steps,
            "train.checkpoint_every": steps,
            "train.keep_checkpoints": 1,
            "train.eval_images": len(PHOTOS),
            "train.eval_size": 128,
        }
    )


def run_demo(
    out_dir: str | Path = "demo-output",
    *,
    size: int = 256,
    models: Mapping[str, str] | None = None,
    train_steps: int = 40,
    log: Log = print,
) -> DemoResult:
    """Run the demo and write its folders, MLflow store and page under ``out_dir``.

    ``models``: task → model reference (weights file, ``s3://``, MLflow URI, bundled name); tasks left out
    use their bundled weights. A reference that cannot be used raises :class:`ModelReferenceError` before
    anything is written.
    """
    started = time.perf_counter()
    resolved = resolve_models(models)
    for model in resolved.values():
        log(f"[demo] {model.task}: {model.reference} ({model.info.arch}, {model.version})")
    scale = resolved["enhance"].info.scale or 4
    size -= size % scale
    if size // scale < 16:
        raise ValueError(f"--size must be at least {16 * scale}: archive copies are 1/{scale} of it, ≥ 16 px")
    if train_steps < 1:
        raise ValueError(f"--train-steps must be at least 1, got {train_steps}")

    out_dir = Path(out_dir).resolve()
    folders = {
        name: out_dir / name
        for name in (
            "originals",
            "archive/enhance",
            "archive/colorize",
            "baseline",
            "generated",
            "training/patches",
        )
    }
    shutil.rmtree(folders["training/patches"], ignore_errors=True)  # a rerun's patches may have another size
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    config = training_config(scale, train_steps)

    with _stage("archive copies", stages, log):
        photos = sample_photos(size)
        for index, (name, original) in enumerate(photos.items()):
            small, gray = archive_jpegs(original, factor=scale, seed=index)
            write_image_file(folders["originals"] / f"{name}.png", _rgb_record(original))
            (folders["archive/enhance"] / f"{name}.jpg").write_bytes(small)
            (folders["archive/colorize"] / f"{name}.jpg").write_bytes(gray)
            _write_patches(original, config.crop_size, folders["training/patches"], name)
        log(
            f"[demo] {len(photos)} photos, {size}² → blurred, ×{scale} smaller, noisy, and gray; JPEG (quality {JPEG_QUALITY})"
        )

    tracking_uri = f"sqlite:///{out_dir / 'mlflow.db'}"
    with _local_ray(log):
        for task, target in (("enhance", "enhanced"), ("colorize", "colorized")):
            with _stage(f"batch {task}", stages, log):
                _batch(task, folders[f"archive/{task}"], out_dir / target, resolved[task], log)
        with _stage("generate", stages, log):
            generated = _generate(resolved["generate"], folders["generated"])
        with _stage("training", stages, log):
            training = _train(config, folders["training/patches"], out_dir, tracking_uri, log)

    with _stage("page", stages, log):
        scores = _scores(photos, out_dir, scale)
        page = _write_page(out_dir, resolved, scale, scores, generated, training, tracking_uri)
    seconds = time.perf_counter() - started
    log("[demo] stages: " + ", ".join(f"{name} {s:.1f} s" for name, s in stages.items()))
    log(f"[demo] total {seconds:.1f} s")
    return DemoResult(out_dir, page, tracking_uri, training, scores, stages, seconds)


@contextmanager
def _stage(name: str, stages: dict[str, float], log: Log) -> Iterator[None]:
    log(f"[demo] {name} …")
    start = time.perf_counter()
    yield
    stages[name] = time.perf_counter() - start
    log(f"[demo] {name}: {stages[name]:.1f} s")


@contextmanager
def _local_ray(log: Log) -> Iterator[None]:
    """One local Ray instance for the batch runs and the training run (reused if one is already connected).

    ``address="local"`` starts a fresh one even when a ``ray start`` cluster runs on this machine. Three
    logical CPUs at least: the batch pipeline's read, model and write stages and the training worker beside
    Ray Data's decoding each take one, which on a 2-core laptop would otherwise wait for each other.
    """
    import ray

    from pixelplexus import localray

    if ray.is_initialized():
        yield
        return
    local = localray.start(  # it ends with the demo, even a killed one
        address="local",
        num_cpus=max(os.cpu_count() or 1, 3),
        include_dashboard=False,
        configure_logging=False,
    )
    log(f"[demo] started a local Ray instance ({ray.cluster_resources().get('CPU', 0):.0f} CPUs)")
    try:
        yield
    finally:
        if local is not None:
            local.stop()
        else:
            ray.shutdown()


def _write_patches(image: np.ndarray, edge: int, folder: Path, name: str) -> None:
    """The photo cut into ``edge``² patches: enough batches per epoch that the short run is not all epoch
    boundaries (each restarts the worker's data iterator), with the training crops as large as the patches."""
    for top in range(0, image.shape[0] - edge + 1, edge):
        for left in range(0, image.shape[1] - edge + 1, edge):
            patch = image[top : top + edge, left : left + edge]
            write_image_file(folder / f"{name}-{top:04d}-{left:04d}.png", _rgb_record(patch))


def _batch(task: str, source: Path, target: Path, model: ResolvedModel, log: Log) -> None:
    """The batch job ``pixelplexus TASK SOURCE TARGET --format png --overwrite`` as a function call."""
    from pixelplexus.batch.run import BatchRequest, run_batch

    request = BatchRequest(
        task=task,
        input=str(source),
        output=str(target),
        model=model,
        options=parse_options(task).model_dump(),
        format="png",  # lossless outputs: the PSNR is the model's, not the encoder's
        overwrite=True,  # a rerun applies the models given now
    )
    result = run_batch(request)
    log(f"[demo] {task}: {result.summary.line()}; manifest {result.manifest_uri}")
    if result.failure or result.summary.counts["ok"] != result.summary.inputs:
        raise RuntimeError(f"the {task} batch run did not process every photo: {result.summary.line()}")


def _generate(model: ResolvedModel, folder: Path) -> dict[str, Path]:
    """New images (:meth:`GenerateTask.sample_sheets`): a grid of seeds, a truncation sweep, latent walks;
    name → the PNG written into ``folder``."""
    task = inference_task(model.info)
    sheets = task.sample_sheets(model.load_for_inference(), **SHEETS)
    paths = {name: folder / f"{name}.png" for name in sheets}
    for name, picture in sheets.items():
        write_image_file(paths[name], _rgb_record(picture))
    return paths


def _train(config: TaskConfig, data: Path, out_dir: Path, tracking_uri: str, log: Log) -> TrainingSummary:
    """``pixelplexus train`` on patches of the photos, into the output folder's MLflow store and Ray storage;
    validated on the whole photos."""
    from mlflow import MlflowClient

    from pixelplexus.training.trainer import TrainJob, run_training

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:  # artifacts beside the store, not in the cwd
        client.create_experiment(EXPERIMENT, artifact_location=(out_dir / "mlruns").as_uri())
    job = TrainJob(
        config=config,
        data=str(data),
        val_data=str(out_dir / "originals"),
        workers=1,
        experiment=EXPERIMENT,
        tracking_uri=tracking_uri,
        storage=str(out_dir / "ray_results"),
        max_failures=0,
    )
    result = run_training(job)
    samples = sorted(entry.path for entry in client.list_artifacts(result.run_id, "samples"))
    copy = None
    if samples:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(client.download_artifacts(result.run_id, samples[-1], tmp))
            copy = Path(shutil.copyfile(local, out_dir / "training" / "samples.png"))
    metrics = {k: float(v) for k, v in sorted(result.metrics.items()) if k.startswith(("val_", "step"))}
    log(f"[demo] training run {result.run_id} → {result.model_uri}: {metrics}")
    return TrainingSummary(result.run_id, result.model_uri, metrics, copy)


def _scores(photos: Mapping[str, np.ndarray], out_dir: Path, scale: int) -> dict[str, dict[str, float]]:
    """PSNR of each output and of its naive baseline against the original; writes the bicubic baselines."""
    scores = {}
    for name, original in photos.items():
        small = read_image_file(out_dir / "archive" / "enhance" / f"{name}.jpg").pixels
        bicubic = resize(small, (original.shape[1], original.shape[0]))
        write_image_file(out_dir / "baseline" / f"{name}.png", _rgb_record(bicubic))
        gray = as_rgb8(read_image_file(out_dir / "archive" / "colorize" / f"{name}.jpg").pixels)
        enhanced = as_rgb8(read_image_file(out_dir / "enhanced" / f"{name}.png").pixels)
        colorized = as_rgb8(read_image_file(out_dir / "colorized" / f"{name}.png").pixels)
        scores[name] = {
            "bicubic": psnr(bicubic, original, crop_border=scale, y_channel=True),
            "enhance": psnr(enhanced, original, crop_border=scale, y_channel=True),
            "gray": psnr(gray, original),
            "colorize": psnr(colorized, original),
        }
    return scores


def _rgb_record(pixels: np.ndarray) -> ImageRecord:
    return ImageRecord(pixels, None, "PNG", None, "RGB")


def _write_page(
    out_dir: Path,
    models: Mapping[str, ResolvedModel],
    scale: int,
    scores: Mapping[str, Mapping[str, float]],
    generated: Mapping[str, Path],
    training: TrainingSummary,
    tracking_uri: str,
) -> Path:
    """``index.html`` from :data:`PAGE_TEMPLATE`: per photo, before / after / original for both tasks with
    PSNR; the generated sheets (``samples``, ``truncation``, ``interpolation``); the run."""

    def figure(src: str, caption: str, kind: str = "photo") -> str:
        cls = f' class="{kind}"'
        return (
            f'<figure><a href="{html.escape(src)}"><img src="{html.escape(src)}"{cls} alt=""></a>'
            f"<figcaption>{caption}</figcaption></figure>"
        )

    def gain(after: float, before: float) -> str:
        delta = after - before
        return f'<span class="{"gain" if delta >= 0 else "loss"}">{delta:+.2f} dB</span>'

    mean = {key: float(np.mean([s[key] for s in scores.values()])) for key in SCORES}
    summary_rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{s['bicubic']:.2f}</td><td>{s['enhance']:.2f}</td>"
        f"<td>{gain(s['enhance'], s['bicubic'])}</td><td>{s['gray']:.2f}</td><td>{s['colorize']:.2f}</td>"
        f"<td>{gain(s['colorize'], s['gray'])}</td></tr>"
        for name, s in {**scores, "mean": mean}.items()
    )
    photos = "".join(
        f"<h3>{html.escape(name)}</h3>"
        + figure(f"archive/enhance/{name}.jpg", f"archive copy (1/{scale} size, JPEG)", "photo pixels")
        + figure(f"baseline/{name}.png", f"before: bicubic ×{scale}, Y-PSNR {s['bicubic']:.2f} dB")
        + figure(f"enhanced/{name}.png", f"after: enhanced, Y-PSNR {s['enhance']:.2f} dB")
        + figure(f"originals/{name}.png", "original")
        + "<br>"
        + figure(f"archive/colorize/{name}.jpg", f"before: gray JPEG, PSNR {s['gray']:.2f} dB")
        + figure(f"colorized/{name}.png", f"after: colorized, PSNR {s['colorize']:.2f} dB")
        + figure(f"originals/{name}.png", "original")
        for name, s in scores.items()
    )
    used = "".join(
        f"<li>{task}: <code>{html.escape(m.reference)}</code> ({html.escape(m.info.arch)}, "
        f"{html.escape(m.version)})</li>"
        for task, m in models.items()
    )
    metrics = ", ".join(f"{html.escape(k)} {v:.4g}" for k, v in training.metrics.items())
    samples = (
        figure("training/samples.png", "the run's last validation samples (input / output / real)", "sheet")
        if training.samples
        else ""
    )
    page = out_dir / "index.html"
    template = string.Template(resources.files("pixelplexus").joinpath(PAGE_TEMPLATE).read_text("utf-8"))
    page.write_text(
        template.substitute(
            models=used,
            scale=scale,
            summary_rows=summary_rows,
            photos=photos,
            last_seed=SHEETS["rows"] * SHEETS["columns"] - 1,
            sweep_last=SHEETS["sweep_seeds"] - 1,
            walks=SHEETS["walks"],
            truncations=", ".join(f"{t:g}" for t in TRUNCATION_SWEEP if t is not None),
            **{
                f"generated_{name}": html.escape(path.relative_to(out_dir).as_posix())
                for name, path in generated.items()
            },
            run_id=html.escape(training.run_id),
            model_uri=html.escape(training.model_uri),
            metrics=metrics,
            samples=samples,
            tracking_uri=html.escape(tracking_uri),
        ),
        encoding="utf-8",
    )
    return page


def describe(result: DemoResult) -> str:
    """Where everything went, for the end of the command's output."""
    return (
        f"outputs: {result.out_dir}\n"
        f"page:    {result.page}\n"
        f"MLflow:  {result.tracking_uri} (run {result.training.run_id}, {result.training.model_uri})\n"
        f"browse:  mlflow ui --backend-store-uri {result.tracking_uri}\n"
        f"took {result.seconds:.1f} s"
    )
