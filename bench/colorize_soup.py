"""Make one colorize model of several trainings of a recipe: their mean (a model soup), the prior of the
ab bins it was trained under, and its decoding — and score each training, the soup and its decodings.

Trainings of one network from the same start (the pretrained encoder, the same seed for the decoder) that
differ in what they saw (crop size, scene scale, learning rates) average into a model that is better than
each of them and costs what one costs (Wortsman et al. 2022, "Model soups"). This script

1. averages the given weights files (``pixelplexus models soup``; the first's metadata is kept),
2. counts the prior of the ab bins on the training photos (every shared photo set but the held-out one,
   the views training sees: :meth:`ColorizeTask.count_prior`), which ``prior_correction`` decodes with,
   and their mean colour, which ``chroma_gain`` stretches about,
3. scores every training and the soup on the held-out photos at 256 px as MLflow tracks them
   (:meth:`ColorizeTask.evaluate`), the soup under each decoding of ``--grid``,
4. writes the soup with the decoding chosen by ``--render-scales``, ``--prior-correction`` and
   ``--chroma-gain`` to ``--out``, its floating tensors stored as float16 (they load as float32).

    .venv/bin/python bench/colorize_soup.py RUN_A.safetensors RUN_B.safetensors ... --data ../shared/data \\
        --out platform/pixelplexus/bundled/colorize.safetensors --render-scales 1 --prior-correction 0.75 \\
        --chroma-gain 1.06

Prints Markdown rows for docs/models.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from pixelplexus.io.files import write_atomic
from pixelplexus.references import average_models
from pixelplexus.tasks.colorize import ColorizeTask, mean_ab, prior_shares
from pixelplexus.weights import WeightsInfo, generator_bytes, load_generator
from quality import read_images, scoring_task, training_photos

EVAL_SIZE = 256


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


def _decodings(text: str) -> tuple[tuple[float, float], ...]:
    """``0.5,1@1.08`` → ((0.5, 1.0), (1.0, 1.08)): α, or α@chroma gain."""
    return tuple((float(a), float(g or 1)) for a, _, g in (part.partition("@") for part in text.split(",")))


def decoded(info: WeightsInfo, **decoding: object) -> WeightsInfo:
    """``info`` with its colorize decoding keys replaced."""
    return dataclasses.replace(info, extra={**info.extra, "colorize": {**info.extra["colorize"], **decoding}})


def score(generator: torch.nn.Module, info: WeightsInfo, images, tint) -> dict[str, float]:
    task = scoring_task(info, **{"train.eval_size": EVAL_SIZE})
    with torch.no_grad():
        return task.evaluate(generator, images, tint=tint).metrics


def row(name: str, m: dict[str, float]) -> str:
    return (
        f"| {name} | {m['psnr_over_gray']:+.3f} | {m['hue_accuracy']:.3f} | {m['chroma_spread']:.3f} "
        f"| {m['colorfulness_ratio']:.2f} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="weights files of the trainings (two or more)")
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--held-out", default="SunHays80", help="photos/<folder> no training saw")
    parser.add_argument("--out", type=Path, required=True, help="the weights file to write")
    parser.add_argument("--render-scales", type=_floats, default=(1.0,), help="e.g. 1 or 1,0.75")
    parser.add_argument("--prior-correction", type=float, default=0.0, help="α, 0..1")
    parser.add_argument(
        "--chroma-gain",
        type=float,
        default=1.0,
        help="g: ab stretched about the training photos' mean colour",
    )
    parser.add_argument(
        "--grid",
        type=_decodings,
        default=_decodings("0,0.25,0.5,0.75,1"),
        help="decodings to score the soup at: α or α@g, comma-separated",
    )
    parser.add_argument(
        "--crop-size", type=int, default=128, help="the recipe's crop size, for the prior's views"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    held_out, _ = read_images(str(args.data / "photos" / args.held_out), limit=1000)
    training = [
        image
        for folder in training_photos(args.data, args.held_out)
        for image in read_images(str(folder), 1000)[0]
    ]
    tint = mean_ab(training)
    print("| model | vs gray (dB) | balanced hue accuracy | chroma spread / truth | colourfulness / truth |")
    print("|---|---|---|---|---|")
    upsample = load_generator(args.runs[0], task="colorize")[1].extra["colorize"].get("upsample", "bilinear")
    for path in args.runs:  # each alone, decoded as the soup is at α 0 and one render size
        generator, info = load_generator(path, task="colorize")
        alone = decoded(info, render_scales=(1.0,), prior_correction=0.0, upsample=upsample)
        name = f"run {info.run_id or Path(path).name}, render scales (1.0,), α 0"
        print(row(name, score(generator, alone, held_out, tint)), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        soup_path = Path(tmp) / "soup.safetensors"
        average_models([str(p) for p in args.runs], "colorize", soup_path)
        generator, info = load_generator(soup_path, task="colorize")
    counter = scoring_task(info, crop_size=args.crop_size)
    prior = counter.count_prior(training)
    centre = [round(part, 3) for part in tint]  # what chroma_gain stretches about
    info = dataclasses.replace(info, extra={**info.extra, "ab_prior": prior_shares(prior), "ab_mean": centre})
    print(f"prior counted on {len(training)} training photos ({int(prior.sum())} pixels)", file=sys.stderr)
    for scales in sorted({(1.0,), tuple(args.render_scales)}, key=len):
        for alpha, gain in args.grid:
            decoding = decoded(info, render_scales=scales, prior_correction=alpha, chroma_gain=gain)
            m = score(generator, decoding, held_out, tint)
            print(row(f"soup, render scales {scales}, α {alpha:g}, gain {gain:g}", m), flush=True)

    chosen = decoded(
        info,
        render_scales=tuple(args.render_scales),
        prior_correction=args.prior_correction,
        chroma_gain=args.chroma_gain,
    )
    ColorizeTask.for_inference(chosen)  # the decoding is valid and the prior is there
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, generator_bytes(generator.half(), chosen))
    print(
        f"wrote {args.out}: render scales {args.render_scales}, α {args.prior_correction:g}, "
        f"gain {args.chroma_gain:g}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
