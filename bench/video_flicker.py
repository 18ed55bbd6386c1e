"""Colorized film: how much its colour flickers, against the true colours and against per-frame colorization.

For each of ``--photos`` photos of BSDS500-test (``$PIXELPLEXUS_SHARED/data/photos``), a short "film"
(``tests/support/clips.py``'s ``film_frames``: a patch of the photo slides across while the rest holds
still, with film grain of ``--grain`` levels) is stored twice: in colour (the truth) and in gray (the
black-and-white film, crf 23). The gray films are colorized by ``pixelplexus colorize`` (the batch
pipeline: 2 s segments, the model, :func:`pixelplexus.temporal.smooth_chroma`, encoding at crf 18), and
frame by frame with the same model without smoothing; the truth and the per-frame results are encoded as
the pipeline encodes (the same segments, each starting with a keyframe, crf 18) so that all three went
through the same compression — a keyframe alone changes the colour of still parts by ~0.5 (the spikes in
the figure, on every curve).

Flicker is :func:`pixelplexus.metrics.ab_flicker` on the still parts (8 pixels clear of the moving
patch): the mean absolute change of Lab a/b between consecutive frames. Prints a Markdown table (per film:
truth, per-frame, pipeline and the ratios) and writes ``docs/images/video-colorize-flicker.png``: frames
of one film (gray, per-frame, pipeline, truth) and the flicker of each transition over time.

    .venv/bin/python bench/video_flicker.py [--photos 6] [--frames 72] [--grain 4] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIXELPLEXUS_SHARED", REPO.parent / "shared"))
SIZE = (240, 160)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--grain", type=float, default=4.0)
    parser.add_argument("--model", default=None, help="colorize weights (default: the bundled model)")
    parser.add_argument("--figure", default=str(REPO / "docs" / "images" / "video-colorize-flicker.png"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from PIL import Image

    from pixelplexus.batch.run import BatchRequest, run_batch
    from pixelplexus.io.images import ImageRecord
    from pixelplexus.metrics import ab_flicker
    from pixelplexus.references import resolve_model
    from pixelplexus.tasks import inference_task
    from support.clips import encoded_like_the_pipeline, film_frames, frames_of, write_clip

    photos = sorted((SHARED / "data" / "photos" / "BSDS500-test").glob("*.jpg"))[: args.photos]
    if not photos:
        sys.exit(f"no photos under {SHARED}/data/photos/BSDS500-test (set PIXELPLEXUS_SHARED)")
    model = resolve_model(args.model, "colorize")
    task, generator = inference_task(model.info), model.load_for_inference("cpu")
    options = task.parse_options({"precision": "fp32"})
    work = Path(tempfile.mkdtemp(prefix="video-flicker-"))
    inputs, output = work / "in", work / "out"
    inputs.mkdir()
    films = {}
    for photo in photos:
        colour, still, gray = film_frames(
            np.asarray(Image.open(photo).convert("RGB").resize(SIZE)), args.frames, args.grain
        )
        source = write_clip(inputs / f"{photo.stem}.mp4", images=gray, size=SIZE, audio=False, crf=23)
        films[photo.stem] = (colour, still, source)
    result = run_batch(
        BatchRequest(
            task="colorize", input=str(inputs), output=str(output), model=model, options={"precision": "fp32"}
        )
    )
    print(f"pipeline: {result.summary.line()}", file=sys.stderr)

    rows, curves = [], None
    for stem, (colour, still, source) in films.items():
        gray = frames_of(source)[0]
        per_frame = np.stack(
            [r.pixels for r in task.predict(generator, [ImageRecord(f) for f in gray], options)]
        )
        truth = encoded_like_the_pipeline(colour, source, work / "truth.mp4")
        raw = encoded_like_the_pipeline(per_frame, source, work / "raw.mp4")
        piped = frames_of(output / f"{stem}.mp4")[0]
        figures = {
            name: ab_flicker(frames, still)
            for name, frames in (("truth", truth), ("raw", raw), ("pipeline", piped))
        }
        rows.append((stem, figures))
        if curves is None:
            curves = (stem, gray, raw, piped, truth, still)
    print(
        f"Films of {args.frames} frames at {SIZE[0]}×{SIZE[1]}, 24 fps, grain σ={args.grain:g}; {args.model or 'bundled colorize'} model, fp32.\n"
    )
    print("| film | truth | per frame | pipeline | per frame / truth | pipeline / truth |")
    print("|---|---|---|---|---|---|")
    for stem, f in rows:
        print(
            f"| {stem} | {f['truth']:.3f} | {f['raw']:.3f} | {f['pipeline']:.3f} | {f['raw'] / f['truth']:.2f} | {f['pipeline'] / f['truth']:.2f} |"
        )
    ratios = [f["pipeline"] / f["truth"] for _, f in rows]
    raws = [f["raw"] / f["truth"] for _, f in rows]
    print(f"| median | | | | {statistics.median(raws):.2f} | {statistics.median(ratios):.2f} |")
    figure(curves, args.figure)
    print(f"\nfigure: {args.figure}")


def figure(curves, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pixelplexus.metrics import ab_flicker

    stem, gray, raw, piped, truth, still = curves
    picks = [0, len(gray) // 2, len(gray) - 1]
    fig = plt.figure(figsize=(12, 8.5))
    names = ("gray film (input)", "per-frame colorization", "pipeline (smoothed)", "true colours")
    for row, (name, frames) in enumerate(zip(names, (gray, raw, piped, truth))):
        for col, index in enumerate(picks):
            ax = fig.add_subplot(5, 3, row * 3 + col + 1)
            ax.imshow(frames[index])
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
            if row == 0:
                ax.set_title(f"frame {index}", fontsize=9)
    ax = fig.add_subplot(5, 1, 5)
    for name, frames in zip(names[1:], (raw, piped, truth)):
        ax.plot([ab_flicker(frames[i : i + 2], still) for i in range(len(frames) - 1)], label=name)
    ax.set_xlabel("frame transition")
    ax.set_ylabel("mean |Δab| (still parts)")
    ax.legend(fontsize=8)
    fig.suptitle(f"Colorized film {stem}: colour flicker on the parts that hold still", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
