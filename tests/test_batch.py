"""Batch enhance / colorize on a real Ray cluster, over the moto S3 server and local folders.

Every run must account for every input (inputs = ok + error + skipped) and write what it says it wrote.
The models are tiny, freshly initialised generators: what is checked is the pipeline, not the pictures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pixelplexus.batch import run as batch_run
from pixelplexus.batch.manifest import ManifestWriter, conform, read_manifest
from pixelplexus.batch.pipeline import Predictor
from pixelplexus.batch.planning import output_key, plan
from pixelplexus.batch.run import run_batch
from pixelplexus.cli import main
from pixelplexus.color import rgb_to_lab
from pixelplexus.io import ranges
from pixelplexus.io.formats import format_for_path
from pixelplexus.io.images import ImageRecord, decode_image, encode_image, read_image_file
from pixelplexus.io.locations import Location, LocationError, list_inputs, scan_inputs
from pixelplexus.io.s3 import S3Settings
from pixelplexus.options import parse_options
from pixelplexus.references import resolve_model
from support import corpus
from support.batch import request, write_folder

PIXELPLEXUS = str(Path(sys.executable).with_name("pixelplexus"))
REPO = Path(__file__).resolve().parent.parent


def check_invariant(result, inputs: int) -> None:
    table = result.manifest
    counts = result.summary.counts
    assert table.num_rows == inputs == result.summary.inputs
    assert sum(counts.values()) == inputs and set(table.column("status").to_pylist()) <= {
        "ok",
        "error",
        "skipped",
    }
    assert len(set(table.column("input_key").to_pylist())) == inputs
    assert all(row["reason"] and row["detail"] for row in table.to_pylist() if row["status"] == "error")


# ------------------------------------------------------------------------------------------ without Ray


STAGES_WITHOUT_TORCH = """
import json, pickle, sys
read_and_decode, encode_and_write, settings, batch = pickle.load(open(sys.argv[1], "rb"))
read = read_and_decode(batch, settings)
written = encode_and_write(read, settings)
print(json.dumps({"status": list(written["status"]), "reason": list(written["reason"]),
                  "torch": "torch" in sys.modules}))
"""


def test_the_read_and_encode_stages_run_without_importing_torch(tmp_path):
    """Ray's read/encode workers unpickle the stage functions and their settings as a fresh process does here
    (cloudpickle, by reference): with colorize's pass-through rule they decode, judge colour and write
    without importing torch (~3 s of CPU per worker otherwise)."""
    from ray import cloudpickle

    from pixelplexus.batch.pipeline import StageSettings, encode_and_write, read_and_decode

    images = corpus.good_images(size=(40, 32))
    files = {"colour.png": images["png_rgb"].data, "gray.png": images["png_gray"].data}
    write_folder(tmp_path / "in", files)
    items = scan_inputs(str(tmp_path / "in"), S3Settings())
    columns = {"input": "uri", "input_key": "key", "output_key": "key", "within": "within"}
    batch = {name: np.array([getattr(i, f) for i in items], dtype=object) for name, f in columns.items()}
    rule = parse_options("colorize", skip_color=True).passthrough_rule()
    (tmp_path / "out").mkdir()
    settings = StageSettings(S3Settings(), Location.parse(str(tmp_path / "out")), rule)
    (tmp_path / "stages.pkl").write_bytes(
        cloudpickle.dumps((read_and_decode, encode_and_write, settings, batch))
    )
    run = subprocess.run(
        [sys.executable, "-c", STAGES_WITHOUT_TORCH, str(tmp_path / "stages.pkl")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO / "platform")),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    by_key = dict(zip([i.key for i in items], zip(result["status"], result["reason"])))
    assert by_key == {"colour.png": ("skipped", "already in colour"), "gray.png": ("ok", "")}
    assert result["torch"] is False
    assert (tmp_path / "out" / "colour.png").read_bytes() == files["colour.png"]
    written = decode_image((tmp_path / "out" / "gray.png").read_bytes())
    assert (written.width, written.height) == (40, 32)


def test_inputs_come_from_folders_and_list_files(tmp_path):
    write_folder(tmp_path / "in", {"a/x.JPG": b"1", "a/b/y.png": b"2", "notes.txt": b"", "z.TiFf": b"3"})
    settings = S3Settings()
    assert [i.key for i in list_inputs(str(tmp_path / "in"), settings)] == ["a/b/y.png", "a/x.JPG", "z.TiFf"]
    (tmp_path / "in" / "list.txt").write_text(f"# scans\na/x.JPG\n\n{tmp_path / 'in' / 'z.TiFf'}\na/x.JPG\n")
    items = list_inputs(str(tmp_path / "in" / "list.txt"), settings)
    assert [(i.key, Path(i.uri).read_bytes()) for i in items] == [("a/x.JPG", b"1"), ("z.TiFf", b"3")]
    (tmp_path / "in" / "list.csv").write_text("id,path\n1,a/b/y.png\n2,z.TiFf\n")
    assert [i.key for i in list_inputs(str(tmp_path / "in" / "list.csv"), settings)] == [
        "a/b/y.png",
        "z.TiFf",
    ]
    pq.write_table(pa.table({"n": [1], "image": ["a/b/y.png"]}), tmp_path / "in" / "list.parquet")
    with pytest.raises(LocationError, match="--column"):
        list_inputs(str(tmp_path / "in" / "list.parquet"), settings)
    assert [i.key for i in list_inputs(str(tmp_path / "in" / "list.parquet"), settings, column="image")] == [
        "a/b/y.png"
    ]
    # a list entry that leaves the list's folder is refused as that entry's error row, not the whole list
    (tmp_path / "in" / "escape.txt").write_text("../outside.jpg\na/x.JPG\n")
    items = scan_inputs(str(tmp_path / "in" / "escape.txt"), settings)
    assert [(i.key, i.reason) for i in items] == [("../outside.jpg", "unsafe key"), ("a/x.JPG", "")]
    with pytest.raises(LocationError, match="no such folder"):
        list_inputs(str(tmp_path / "missing"), settings)
    inside = list_inputs(str(tmp_path / "in"), settings, exclude=Location.parse(str(tmp_path / "in" / "a")))
    assert [i.key for i in inside] == ["z.TiFf"]  # OUTPUT inside INPUT: its files are not inputs
    with pytest.raises(LocationError, match="outputs would replace the originals"):
        list_inputs(str(tmp_path / "in"), settings, exclude=Location.parse(str(tmp_path / "in")))


def test_output_keys_follow_the_format():
    assert output_key("a/b.JPG", "keep") == "a/b.JPG" and output_key("a/b.gif", "keep") == "a/b.png"
    assert output_key("a/b.tif", "png") == "a/b.png" and output_key("a/b.jpeg", "jpg") == "a/b.jpeg"
    assert output_key("b.png", "webp") == "b.webp"


def test_plan_refuses_output_collisions_and_trusts_outputs_of_an_interrupted_run(tmp_path, weights):
    png = corpus.good_images()["png_rgb"].data
    write_folder(tmp_path / "in", {"a.png": png, "a.tif": png, "b.bmp": png, "c.gif": png})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(png)  # written by a run killed before its manifest
    the_plan = plan(request(weights, "enhance", tmp_path / "in", tmp_path / "out", format="png"))
    todo = the_plan.todo.to_pylist()
    assert [(r["input_key"], r["output_key"]) for r in todo] == [("a.png", "a.png"), ("c.gif", "c.png")]
    assert [(r["input_key"], r["status"], r["reason"]) for r in the_plan.refused.to_pylist()] == [
        ("a.tif", "error", "output key collision")
    ]
    assert [(r["input_key"], r["status"]) for r in the_plan.done.to_pylist()] == [("b.bmp", "ok")]
    again = plan(request(weights, "enhance", tmp_path / "in", tmp_path / "out", overwrite=True))
    assert again.done.num_rows == 0


def test_planning_a_range_of_keys_at_a_time_decides_as_planning_at_once(tmp_path, weights, monkeypatch):
    """Ranges of 2 keys (io.ranges) give the plan one range gives: a collision across a range bound (a.png
    claims a.png from a.tif, keys apart), a list's duplicate, the newest manifest row of each input."""
    png = corpus.good_images()["png_rgb"].data
    keys = ["a.png", "a.q/x.png", "a.r.png", "a.tif", "b.jpg", "c.gif", "c.png", "d.png", "e.bmp", "f.png"]
    write_folder(tmp_path / "in", dict.fromkeys(keys, png))
    (tmp_path / "in" / "list.txt").write_text("\n".join([*reversed(keys), "b.jpg", "../x.png"]))
    write_folder(tmp_path / "out", dict.fromkeys(["b.png", "d.png", "e.png", "f.png"], png))
    out = Location.parse(str(tmp_path / "out"))
    for run_id, status in (("20260101T000000.000Z-aaaaaa", "ok"), ("20260102T000000.000Z-bbbbbb", "error")):
        writer = ManifestWriter(out, run_id, {}, S3Settings())
        rows = {"input_key": ["d.png", "e.bmp"], "output_key": ["d.png", "e.png"], "status": ["ok", status]}
        writer.add(conform(pa.table(rows), run_id=run_id))
        writer.finish({})

    def decided() -> dict:
        the_plan = plan(
            request(weights, "enhance", tmp_path / "in" / "list.txt", tmp_path / "out", format="png")
        )
        return {kind: the_plan.table(kind).to_pylist() for kind in ("todo", "done", "refused")}

    at_once = decided()
    monkeypatch.setattr(ranges, "RANGE_ROWS", 2)
    assert decided() == at_once
    assert [row["input_key"] for row in at_once["todo"]] == [
        "a.png",
        "a.q/x.png",
        "a.r.png",
        "c.gif",
        "e.bmp",
    ]
    assert [(row["input_key"], row["run_id"]) for row in at_once["done"]] == [
        ("b.jpg", ""),  # output present, no manifest row
        ("d.png", "20260102T000000.000Z-bbbbbb"),  # the newest row, carried over
        ("f.png", ""),
    ]
    refused = {row["input_key"]: row["detail"] for row in at_once["refused"]}
    assert refused.keys() == {"../x.png", "a.tif", "c.png"}
    assert refused["a.tif"].startswith("a.png has the same output key")
    assert refused["c.png"].startswith("c.gif has the same output key")


# ------------------------------------------------------------------------------------------- with Ray


@pytest.mark.slow
def test_s3_enhance_accounts_for_every_image_and_keeps_what_it_should(ray_cluster, s3_bucket, weights):
    s3 = boto3.client("s3")
    good, bad = corpus.good_images(), corpus.bad_images()
    prefixes = ("archive/1950s/", "archive/1960s/box 1/", "archive/")
    keys = {}
    for index, (name, image) in enumerate(good.items()):
        keys[name] = (
            f"{prefixes[index % 3]}{name}{image.extension.upper() if index % 5 == 0 else image.extension}"
        )
    for name, image in bad.items():
        keys[name] = f"archive/bad/{name}{image.extension}"
    for name, key in keys.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=(good.get(name) or bad[name]).data)
    s3.put_object(Bucket=s3_bucket, Key="archive/README.txt", Body=b"not an image")

    result = run_batch(request(weights, "enhance", f"s3://{s3_bucket}/archive", f"s3://{s3_bucket}/x2"))

    check_invariant(result, len(good) + len(bad))
    assert result.summary.counts == {"ok": len(good), "error": len(bad), "skipped": 0}
    rows = {row["input_key"]: row for row in result.manifest.to_pylist()}
    for name, image in good.items():
        row = rows[keys[name][len("archive/") :]]
        assert row["status"] == "ok", (name, row["detail"])
        data = s3.get_object(Bucket=s3_bucket, Key="x2/" + row["output_key"])["Body"].read()
        out = decode_image(data)
        fmt = format_for_path(row["output_key"])
        assert out.format == fmt and fmt == ("PNG" if image.format == "GIF" else image.format), name
        # ×2, with the EXIF orientation applied (width and height swap for 6 and 8)
        assert (out.height, out.width) == (2 * image.height, 2 * image.width), name
        assert (row["width"], row["height"], row["output_bytes"]) == (image.width, image.height, len(data))
        keeps_alpha = image.alpha is not None and fmt in ("PNG", "WEBP", "TIFF")
        assert (out.alpha is not None) == keeps_alpha, name
        assert out.bit_depth == (16 if image.bit_depth == 16 and fmt in ("PNG", "TIFF") else 8), name
        if fmt in ("PNG", "TIFF"):
            assert out.channels == image.channels, name
    for name, image in bad.items():
        row = rows[keys[name][len("archive/") :]]
        assert row["status"] == "error" and row["reason"] and row["detail"], name
        if image.too_large:
            assert row["reason"] == "image too large"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="x2/")["Contents"]}
    manifest = {key for key in listed if key.startswith("x2/_pixelplexus/")}
    assert listed - manifest == {"x2/" + row["output_key"] for row in rows.values() if row["status"] == "ok"}
    folder = f"x2/_pixelplexus/manifest-{result.run_id}/"  # its parts and run.json; the plan is removed
    assert result.manifest_uri == f"s3://{s3_bucket}/{folder.rstrip('/')}"
    assert manifest == {folder + "run.json"} | {
        folder + f"part-{i:08d}.parquet" for i in range(len(manifest) - 1)
    }
    assert read_manifest(f"s3://{s3_bucket}/x2").to_pylist() == result.manifest.to_pylist()
    assert f"{len(good)} ok, {len(bad)} error, 0 skipped" in result.summary.line()
    assert "images/s" in result.summary.line() and "megapixels/s" in result.summary.line()


@pytest.mark.slow
def test_rerun_resumes_and_overwrite_redoes(ray_cluster, tmp_path, weights):
    images = corpus.good_images(size=(24, 20))
    names = ["png_rgb", "jpeg_gray", "tiff_rgb16", "webp_rgba", "bmp_rgb", "png_palette"]
    write_folder(tmp_path / "in", {f"d/{n}{images[n].extension}": images[n].data for n in names})
    (tmp_path / "in" / "first.txt").write_text("d/png_rgb.png\nd/bmp_rgb.bmp\n")
    out = tmp_path / "out"

    partial = run_batch(request(weights, "enhance", tmp_path / "in" / "first.txt", out))
    check_invariant(partial, 2)
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.*") if "_pixelplexus" not in p.parts}
    assert len(first) == 2

    rest = run_batch(request(weights, "enhance", tmp_path / "in", out))
    check_invariant(rest, 6)
    assert rest.summary.counts["ok"] == 6 and rest.summary.earlier == 2
    assert {p: p.stat().st_mtime_ns for p in first} == first  # not redone
    by_run = {row["input_key"]: row["run_id"] for row in rest.manifest.to_pylist()}
    assert by_run["d/png_rgb.png"] == partial.run_id and by_run["d/jpeg_gray.jpg"] == rest.run_id

    (out / "d" / "webp_rgba.webp").unlink()  # an output that went missing is redone
    again = run_batch(request(weights, "enhance", tmp_path / "in", out))
    redone = [row["input_key"] for row in again.manifest.to_pylist() if row["run_id"] == again.run_id]
    assert again.summary.earlier == 5 and redone == ["d/webp_rgba.webp"]

    redo = run_batch(request(weights, "enhance", tmp_path / "in", out, overwrite=True))
    check_invariant(redo, 6)
    assert redo.summary.earlier == 0 and set(redo.manifest.column("run_id").to_pylist()) == {redo.run_id}
    assert all(p.stat().st_mtime_ns != mtime for p, mtime in first.items())
    merged = read_manifest(str(out))
    assert merged.num_rows == 6 and set(merged.column("run_id").to_pylist()) == {redo.run_id}
    assert len(list((out / "_pixelplexus").glob("manifest-*/run.json"))) == 4


class DiesOnce(Predictor):
    """A model actor that kills its own process in its first call, as a lost node would; the marker says so."""

    marker = ""

    def __init__(self, *args, **kwargs):
        if os.path.exists(self.marker):
            with open(self.marker, "a") as f:
                f.write("restarted\n")
        super().__init__(*args, **kwargs)

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("killed\n")
            os._exit(1)
        return super().__call__(batch)


@pytest.mark.slow
def test_a_killed_model_actor_is_restarted_and_nothing_is_lost(ray_cluster, tmp_path, weights, monkeypatch):
    import ray

    images = corpus.good_images(size=(20, 16))
    write_folder(tmp_path / "in", {f"{n}{images[n].extension}": images[n].data for n in list(images)[:10]})
    DiesOnce.marker = str(tmp_path / "actor-marker")
    monkeypatch.setattr(batch_run, "Predictor", DiesOnce)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module
    try:
        result = run_batch(request(weights, "enhance", tmp_path / "in", tmp_path / "out"))
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])

    assert Path(DiesOnce.marker).read_text().splitlines()[:2] == ["killed", "restarted"]
    check_invariant(result, 10)
    assert result.summary.counts["ok"] == 10 and result.failure is None
    assert len(list((tmp_path / "out").glob("*.*"))) == 10


@pytest.mark.slow
def test_a_large_image_through_tiles_equals_the_untiled_result(ray_cluster, tmp_path, weights):
    big = ImageRecord(pixels=corpus.pattern(100, 90, seed=3))  # several tiles of 40 px each way
    write_folder(tmp_path / "in", {"big.png": encode_image(big, "png")})
    radius = resolve_model(str(weights["enhance"]), "enhance").load().receptive_radius
    tiles = {"tile": 8 * radius, "tile_overlap": 4 * radius}  # the overlap covers the receptive field
    whole = run_batch(request(weights, "enhance", tmp_path / "in", tmp_path / "whole"))
    tiled = run_batch(request(weights, "enhance", tmp_path / "in", tmp_path / "tiled", options=tiles))
    assert whole.summary.counts["ok"] == tiled.summary.counts["ok"] == 1
    a, b = (read_image_file(tmp_path / name / "big.png").pixels.astype(int) for name in ("whole", "tiled"))
    assert a.shape == (200, 180, 3) and np.abs(a - b).max() <= 1  # equal up to 8-bit rounding


def lightness(pixels: np.ndarray) -> torch.Tensor:
    top = float(np.iinfo(pixels.dtype).max)
    rgb = torch.from_numpy(pixels.astype(np.float32) / top).permute(2, 0, 1)
    return rgb_to_lab(rgb.expand(3, -1, -1) if rgb.shape[0] == 1 else rgb)[0]


@pytest.mark.slow
def test_cli_colorize_keeps_lightness_and_passes_colour_through(ray_cluster, tmp_path, weights):
    images = corpus.good_images(size=(40, 32))
    names = ["bmp_gray", "png_gray16", "png_gray_alpha", "png_rgb", "tiff_rgb"]
    files = {f"{n}{images[n].extension}": images[n].data for n in names}
    write_folder(tmp_path / "in", files)
    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
    command = ["colorize", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(weights["colorize"])]
    run = subprocess.run(
        [PIXELPLEXUS, *command, "--skip-color", "--render-size", "32", "--batch-size", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "5 inputs: 3 ok, 0 error, 2 skipped" in run.stdout and "manifest: " in run.stdout
    rows = {row["input_key"]: row for row in read_manifest(str(tmp_path / "out")).to_pylist()}
    for name in ("png_rgb", "tiff_rgb"):
        key = f"{name}{images[name].extension}"
        assert rows[key]["status"] == "skipped" and rows[key]["reason"] == "already in colour"
        assert (tmp_path / "out" / key).read_bytes() == files[key]  # untouched
    for name in ("bmp_gray", "png_gray16", "png_gray_alpha"):
        key = f"{name}{images[name].extension}"
        source, result = read_image_file(tmp_path / "in" / key), read_image_file(tmp_path / "out" / key)
        assert rows[key]["status"] == "ok" and result.channels == 3 and result.bit_depth == source.bit_depth
        assert (result.alpha is not None) == (source.alpha is not None)
        assert not np.array_equal(result.pixels[..., 0], result.pixels[..., 2])  # colour was added
        # "keeps L exactly": up to the rounding of the output (< 0.25 L units at 8 bits, far less at 16);
        # lossless formats here, as JPEG and WebP add their own compression error
        assert (lightness(result.pixels) - lightness(source.pixels)).abs().max() < 0.25

    # the Ray job entrypoint takes the same arguments; a rerun finds everything done
    job = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "batch.py"), *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    assert "5 inputs: 3 ok, 0 error, 2 skipped (5 done by earlier runs)" in job.stdout


def test_cli_refuses_bad_references_and_locations_before_any_work(tmp_path, weights, s3_bucket, capsys):
    write_folder(tmp_path / "in", {"a.png": corpus.good_images()["png_rgb"].data})
    enhance = ["enhance", str(tmp_path / "in"), str(tmp_path / "out")]
    colorize = ["colorize", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(weights["colorize"])]
    cases = [
        (
            [*enhance, "--model", str(tmp_path / "nope.safetensors")],
            "neither a weights file nor a bundled name",
        ),
        ([*enhance, "--scale", "3"], "no bundled weights named 'enhance-x3'"),
        ([*enhance, "--model", str(weights["colorize"])], "not a 'enhance' one"),
        ([*enhance, "--model", str(weights["enhance"]), "--scale", "4"], "×4 was asked"),
        ([*enhance, "--model", f"s3://{s3_bucket}/models/missing.safetensors"], "no such object"),
        ([*colorize, "--strength", "2"], "strength"),
        (["colorize", "s3://no-such-bucket-here/in", *colorize[2:]], "bucket does not exist"),
        (["colorize", colorize[1], "s3://no-such-bucket-here/out", *colorize[3:]], "bucket does not exist"),
        (["colorize", str(tmp_path / "empty"), *colorize[2:]], "no such folder"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "out").exists()  # nothing written
