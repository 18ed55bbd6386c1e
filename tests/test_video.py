"""Videos: probing, segments at keyframes, decoding, encoding and muxing (frames, times, sound kept), the errors
a video can raise, colour that holds still; then whole batch runs of videos on a real local Ray cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pixelplexus.batch.manifest import read_manifest
from pixelplexus.batch.run import run_batch
from pixelplexus.io import video
from pixelplexus.io.video import VideoError
from pixelplexus.metrics import ab_flicker
from pixelplexus.temporal import smooth_chroma
from support.batch import request
from support.clips import (
    audio_packets,
    decoded_audio,
    encoded_like_the_pipeline,
    film_frames,
    frames_of,
    pattern,
    subtitle_packets,
    write_clip,
)


def _probe(path: Path) -> video.VideoInfo:
    with open(path, "rb") as f:
        return video.probe(f)


def _process(source: Path, destination: Path, frames_per_segment: int, scale: int = 2, **encode) -> None:
    """What a batch run does to a video, in one process: segments → decode → (nearest ×scale) → encode → mux."""
    info = _probe(source)
    parts = []
    for segment in video.plan_segments(info, frames_per_segment):
        with open(source, "rb") as f:
            frames = video.decode_segment(f, info, segment)
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
        times = info.pts[segment.first : segment.last]
        parts.append(video.encode_segment(frames, times, info, codec=encode.get("codec", "h264"), crf=18))
    with open(source, "rb") as src, open(destination, "wb") as out:
        video.mux(src, parts, out, video.container_for(destination.name))


# ------------------------------------------------------------------------------------------------ io.video


def test_segments_rejoin_into_the_same_frames_times_and_sound(tmp_path):
    source = write_clip(tmp_path / "clip.mp4", frames=60, size=(64, 48), fps=24, gop=12)
    out = tmp_path / "out.mp4"
    _process(source, out, frames_per_segment=16)
    before, after = _probe(source), _probe(out)
    assert after.frames == before.frames == 60
    assert after.pts == before.pts and after.time_base == before.time_base
    assert after.rate == before.rate == 24 and after.seconds == pytest.approx(2.5)
    assert (after.width, after.height) == (128, 96)
    assert after.audio == 1 and audio_packets(out) == audio_packets(source)  # copied, packet for packet
    assert np.array_equal(decoded_audio(out), decoded_audio(source))
    # the pictures: each output frame is its input frame doubled, within the codec's loss
    ins, _ = frames_of(source)
    outs, _ = frames_of(out)
    assert np.abs(outs.astype(int) - ins.repeat(2, 1).repeat(2, 2).astype(int)).mean() < 3


def test_segments_are_cut_at_keyframes_and_a_long_gop_is_cut_inside(tmp_path):
    info = _probe(write_clip(tmp_path / "gop12.mp4", frames=60, gop=12))
    assert sorted(info.keyframes) == [info.pts[i] for i in range(0, 60, 12)]
    segments = video.plan_segments(info, 16)
    assert [s.first for s in segments] == [0, 12, 24, 36, 48]  # at keyframes (≥ half of 16 frames each)
    assert sum(s.frames for s in segments) == 60

    source = write_clip(tmp_path / "gop250.mp4", frames=50, gop=250)
    info = _probe(source)
    segments = video.plan_segments(info, 16)
    assert [s.first for s in segments] == [0, 16, 32, 48]  # no keyframe to cut at: every 16 frames
    whole, _ = frames_of(source)
    for segment in segments:  # decoding starts at the keyframe before and drops the frames ahead
        with open(source, "rb") as f:
            frames = video.decode_segment(f, info, segment)
        assert np.array_equal(frames, whole[segment.first : segment.last])


def test_a_variable_frame_rate_keeps_every_frame_time_and_subtitles_are_copied(tmp_path):
    time_base = Fraction(1, 1000)
    times = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740, 780, 820]
    source = write_clip(
        tmp_path / "vfr.mkv", frames=len(times), pts=times, time_base=time_base, subtitle="ARCHIVE REEL 3"
    )
    info = _probe(source)
    assert info.variable_rate and list(info.pts) == times
    out = tmp_path / "out.mkv"
    _process(source, out, frames_per_segment=4)
    assert list(_probe(out).pts) == times
    assert subtitle_packets(out) == subtitle_packets(source) == [(b"ARCHIVE REEL 3", 0.1)]
    assert audio_packets(out) == audio_packets(source)


def test_other_codecs_and_containers(tmp_path):
    source = write_clip(tmp_path / "clip.webm", frames=12, codec="libvpx-vp9", audio=False)
    assert video.output_codec("webm", None) == "vp9"
    with pytest.raises(ValueError, match=r"webm container cannot hold it \(it holds vp9, av1\)"):
        video.output_codec("webm", "h264")
    out = tmp_path / "out.webm"
    _process(source, out, frames_per_segment=6, codec="vp9")
    assert _probe(out).frames == 12 and _probe(out).codec == "vp9"
    mkv = tmp_path / "out.mkv"
    _process(write_clip(tmp_path / "clip.mkv", frames=12), mkv, frames_per_segment=6, codec="ffv1")
    assert _probe(mkv).codec == "ffv1" and _probe(mkv).frames == 12


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48_000
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _resolution_change(path: Path) -> Path:
    """An MPEG-TS stream whose second half is larger: two clips joined byte for byte (as broadcast
    recordings are)."""
    parts = [
        write_clip(path.with_suffix(f".part{n}"), frames=12, size=size, container="mpegts", audio=False)
        for n, size in enumerate([(64, 48), (96, 64)])
    ]
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    for part in parts:
        part.unlink()
    return path


def test_bad_videos_raise_clear_errors(tmp_path):
    good = write_clip(tmp_path / "good.mp4", frames=24).read_bytes()
    cases = {
        "empty.mp4": (b"", "empty file"),
        "noise.mp4": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "cannot read"),
        "cut.mp4": (good[: len(good) // 2], "cannot read the video"),  # the index (moov) is at the end
        "sound.m4a.mp4": (_audio_only(tmp_path / "a.mp4").read_bytes(), "no video stream"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with open(tmp_path / name, "rb") as f, pytest.raises(VideoError, match=reason) as caught:
            video.probe(f)
        assert "\\x" not in caught.value.detail and name not in caught.value.detail
    changing = _resolution_change(tmp_path / "change.ts")
    info = _probe(changing)
    with open(changing, "rb") as f, pytest.raises(VideoError, match="resolution changes mid-stream"):
        video.decode_segment(f, info, video.plan_segments(info, 100)[0])


def test_a_truncated_stream_keeps_the_frames_it_holds(tmp_path):
    """A Matroska stream cut short (a copy that stopped): its whole frames are read — the index is the
    packets found, a part-packet at the end is dropped by the demuxer — and decode to the original's."""
    source = write_clip(tmp_path / "clip.mkv", frames=48, audio=False, crf=0)
    whole, _ = frames_of(source)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(source.read_bytes()[: int(source.stat().st_size * 0.8)])
    info = _probe(cut)
    assert 24 < info.frames < 48
    decoded = []
    for segment in video.plan_segments(info, 12):
        with open(cut, "rb") as f:
            decoded.append(video.decode_segment(f, info, segment))
    assert np.array_equal(np.concatenate(decoded), whole[: info.frames])


# ------------------------------------------------------------------------------------------------ colour in time


def test_smoothing_keeps_luma_and_stills_colour_noise_but_not_motion():
    rng = np.random.default_rng(1)
    base = np.full((20, 32, 32, 3), 128.0)
    base[..., 0] += 40  # a reddish gray wall
    noisy = base + rng.normal(0, 6, (20, 32, 32, 1)) * np.array([1.0, -1.0, 0.5])  # chroma noise per frame
    noisy[:, :, 24:] = 0
    for t in range(20):  # a bright square moving right over the right-hand part
        noisy[t, 8:16, 24 + t % 8 : 28 + t % 8] = [250, 40, 40]
    frames = np.clip(noisy, 0, 255).astype(np.uint8)
    smoothed = smooth_chroma(frames)
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(smoothed @ luma - frames @ luma).max() < 1.5  # luma unchanged (rounding)
    still = np.zeros((32, 32), bool)
    still[:, :20] = True
    assert ab_flicker(smoothed, still) < 0.5 * ab_flicker(frames, still)
    # the moving square keeps its own colour, and leaves no trail of red where it was a frame ago
    square, behind = slice(27, 31), slice(26, 27)  # frame 19: columns 27–30; column 26 was red in frame 18
    for columns in (square, behind):
        difference = smoothed[-1, 8:16, columns].astype(int) - frames[-1, 8:16, columns]
        assert np.abs(difference).max() <= 3


# ------------------------------------------------------------------------------------------------ batch runs


@pytest.mark.slow
def test_batch_enhance_of_videos_and_images_accounts_for_every_input(ray_cluster, tmp_path, weights, capsys):
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "reel").mkdir()
    write_clip(inputs / "reel" / "a.mp4", frames=40, size=(48, 32), gop=10)
    write_clip(inputs / "b.mkv", frames=20, size=(48, 32), subtitle="REEL B")
    from PIL import Image

    Image.fromarray(pattern(0, 40, 30)).save(inputs / "still.png")
    (inputs / "empty.mp4").write_bytes(b"")
    _audio_only(inputs / "sound.mp4")
    _resolution_change(inputs / "change.ts")

    batch = request(weights, "enhance", inputs, output)
    result = run_batch(batch)
    rows = {row["input_key"]: row for row in result.manifest.to_pylist()}
    assert set(rows) == {"reel/a.mp4", "b.mkv", "still.png", "empty.mp4", "sound.mp4", "change.ts"}
    assert {k: rows[k]["status"] for k in rows} == {
        "reel/a.mp4": "ok",
        "b.mkv": "ok",
        "still.png": "ok",
        "empty.mp4": "error",
        "sound.mp4": "error",
        "change.ts": "error",
    }
    assert rows["empty.mp4"]["reason"] == "empty file"
    assert rows["sound.mp4"]["reason"] == "no video stream"
    assert rows["change.ts"]["reason"] == "resolution changes mid-stream"
    a = rows["reel/a.mp4"]
    assert (a["frames"], a["video_seconds"], a["width"], a["output_width"]) == (
        40,
        pytest.approx(40 / 24),
        48,
        96,
    )
    assert rows["still.png"]["frames"] is None
    assert result.summary.frames == 60 and result.summary.counts == {"ok": 3, "error": 3, "skipped": 0}
    for name in ("reel/a.mp4", "b.mkv"):
        before, after = _probe(inputs / name), _probe(output / name)
        assert after.pts == before.pts and (after.width, after.height) == (96, 64)
        assert audio_packets(output / name) == audio_packets(inputs / name)
    assert subtitle_packets(output / "b.mkv") == [(b"REEL B", 0.1)]
    assert not (output / "empty.mp4").exists() and not (output / "change.ts").exists()
    leftovers = [
        p.name for p in (output / "_pixelplexus").iterdir() if not p.name.startswith(("manifest-", "lease"))
    ]
    assert leftovers == []  # the segments are gone

    again = run_batch(batch)  # done videos are skipped, errors retried (and fail again)
    assert again.summary.earlier == 3 and again.summary.counts["error"] == 3
    assert read_manifest(str(output)).num_rows == 6


@pytest.mark.slow
def test_one_long_video_is_shared_by_several_actors_and_comes_back_in_order(ray_cluster, tmp_path, weights):
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    write_clip(inputs / "long.mp4", frames=96, size=(32, 24), gop=8)
    from pixelplexus.batch import video as batch_video

    segments_seen = []
    original = batch_video.VideoAssembler.add

    def spy(self, row):
        segments_seen.append((int(row["segment"]), int(row["segments"])))
        original(self, row)

    batch_video.VideoAssembler.add = spy
    try:
        result = run_batch(request(weights, "enhance", inputs, output, concurrency=2, segment_frames=12))
    finally:
        batch_video.VideoAssembler.add = original
    assert result.summary.counts["ok"] == 1 and result.summary.frames == 96
    assert sorted(segments_seen) == [(n, 12) for n in range(12)]  # 96 frames, keyframes every 8: 12 × 8
    ins, _ = frames_of(inputs / "long.mp4")
    outs, times = frames_of(output / "long.mp4")
    assert list(times) == list(_probe(inputs / "long.mp4").pts)
    # in order: each output frame, shrunk back, is closest to its own input frame
    small = outs.reshape(96, 24, 2, 32, 2, 3).mean(axis=(2, 4))
    distance = np.abs(small[:, None].astype(float) - ins[None].astype(float)).mean(axis=(2, 3, 4))
    assert (distance.argmin(axis=1) == np.arange(96)).all()


@pytest.mark.slow
def test_videos_from_s3_to_s3(ray_cluster, s3_bucket, weights, tmp_path):
    import boto3

    clip = write_clip(tmp_path / "clip.mp4", frames=24, size=(32, 24))
    s3 = boto3.client("s3")
    s3.upload_file(str(clip), s3_bucket, "films/clip.mp4")
    result = run_batch(request(weights, "enhance", f"s3://{s3_bucket}/films", f"s3://{s3_bucket}/out"))
    assert result.summary.counts["ok"] == 1
    s3.download_file(s3_bucket, "out/clip.mp4", str(tmp_path / "back.mp4"))
    assert _probe(tmp_path / "back.mp4").pts == _probe(clip).pts
    assert audio_packets(tmp_path / "back.mp4") == audio_packets(clip)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]]
    assert not [k for k in keys if "segments-" in k]


@pytest.mark.slow
def test_a_killed_run_leaves_no_partial_video_and_the_next_run_finishes_it(tmp_path, weights):
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    write_clip(inputs / "film.mp4", frames=120, size=(64, 48), gop=8)
    command = [
        str(Path(sys.executable).with_name("pixelplexus")),
        "enhance",
        str(inputs),
        str(output),
        "--model",
        str(weights["enhance"]),
        "--tile",
        "0",
    ]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(output.glob("_pixelplexus/segments-*/*.nut")):  # kill it once segments are encoded
        assert run.poll() is None and time.monotonic() < deadline, (
            "the run ended before any segment was written"
        )
        time.sleep(0.05)
    run.kill()
    run.wait(timeout=60)
    assert not (output / "film.mp4").exists()
    assert not [p for p in output.rglob("*.tmp")]
    finished = subprocess.run([*command, "--force"], capture_output=True, text=True, timeout=300)  # its lease
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert _probe(output / "film.mp4").frames == 120
    assert sorted(p.name for p in (output / "_pixelplexus").iterdir() if "segments-" in p.name) == []


SHARED = Path(os.environ.get("PIXELPLEXUS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
PHOTOS = SHARED / "data" / "photos" / "BSDS500-test"
FILM_PHOTOS = ("100007.jpg", "10081.jpg")


@pytest.mark.slow
@pytest.mark.skipif(
    not all((PHOTOS / name).is_file() for name in FILM_PHOTOS),
    reason=f"photos {FILM_PHOTOS} not found in {PHOTOS} (set PIXELPLEXUS_SHARED to the shared folder)",
)
def test_colorized_film_flickers_at_most_twice_as_much_as_the_true_colours(ray_cluster, tmp_path):
    """Black-and-white "films" made from colour photos (a patch moving, film grain; stored at crf 23),
    colorized by the bundled model through the batch pipeline (two segments each): the colour of the still
    parts changes from frame to frame at most 2× as much as in the true-colour film stored as the output
    is (the same segments, each starting with a keyframe, crf 18), and less than per-frame colorization
    stored the same way."""
    from PIL import Image

    from pixelplexus.batch.run import BatchRequest
    from pixelplexus.io.images import ImageRecord
    from pixelplexus.references import resolve_model
    from pixelplexus.tasks import inference_task

    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    films = {}
    for name in FILM_PHOTOS:
        photo = np.asarray(Image.open(PHOTOS / name).convert("RGB").resize((240, 160)))
        colour, still, gray = film_frames(photo, frames=36)
        source = write_clip(inputs / f"{name}.mp4", images=gray, size=(240, 160), audio=False, crf=23)
        truth = encoded_like_the_pipeline(colour, source, tmp_path / f"truth-{name}.mp4", segment_frames=18)
        films[name] = (truth, still)
    model = resolve_model(None, "colorize")
    result = run_batch(
        BatchRequest(task="colorize", input=str(inputs), output=str(output), model=model, segment_frames=18)
    )
    assert result.summary.counts["ok"] == len(FILM_PHOTOS)
    task, generator = inference_task(model.info), model.load_for_inference("cpu")
    for name, (truth, still) in films.items():
        colorized, _ = frames_of(output / f"{name}.mp4")
        gray = frames_of(inputs / f"{name}.mp4")[0]
        per_frame = np.stack([r.pixels for r in task.predict(generator, [ImageRecord(f) for f in gray])])
        per_frame = encoded_like_the_pipeline(per_frame, inputs / f"{name}.mp4", tmp_path / "raw.mp4", 18)
        flicker, expected = ab_flicker(colorized, still), ab_flicker(truth, still)
        assert flicker <= 2 * expected, (name, flicker, expected)
        assert flicker < 0.9 * ab_flicker(per_frame, still), name  # the smoothing is what keeps it down


@pytest.mark.slow
def test_cli_takes_one_video_file_as_input_and_reports_frames(ray_cluster, tmp_path, weights):
    clip = write_clip(tmp_path / "reel.mp4", frames=24, size=(32, 24))
    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
    pixelplexus = str(Path(sys.executable).with_name("pixelplexus"))
    command = [pixelplexus, "enhance", str(clip), str(tmp_path / "out"), "--model", str(weights["enhance"])]
    run = subprocess.run([*command, "--crf", "30"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "videos: 24 frames (1.0 s of video)" in run.stdout
    assert "videos 1/1 done; 24/24 frames (1.0/1.0 s of video) encoded" in run.stderr
    assert _probe(tmp_path / "out" / "reel.mp4").pts == _probe(clip).pts
    # a video's output never replaces its input
    same = subprocess.run(
        [*command[:3], str(tmp_path), *command[4:]], capture_output=True, text=True, env=env
    )
    assert same.returncode == 2 and "OUTPUT is the folder of INPUT" in same.stderr
    bad = subprocess.run([*command, "--crf", "99"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--crf must be between 0 and 63" in bad.stderr


def test_neighbouring_segments_colours_meet_when_run_with_context():
    """A still wall whose colorized hue drifts over 48 frames, cut into two segments: smoothed alone, the
    second segment starts a step away from where the first ended; with 6 frames of each other's context
    the step all but goes, and each segment still returns only its own frames."""
    frames = np.empty((48, 16, 16, 3), np.uint8)
    for t in range(48):
        frames[t] = [120 + t // 2, 120, 120 - t // 2]  # red rising, blue falling: chroma drifts
    alone = [smooth_chroma(frames[:24]), smooth_chroma(frames[24:])]
    together = [smooth_chroma(frames[:30], context=(0, 6)), smooth_chroma(frames[18:], context=(6, 0))]
    assert [len(part) for part in together] == [24, 24]

    def step(first, second):
        return np.abs(second[0].astype(int) - first[-1]).max()

    assert step(*alone) >= 10 and step(*together) <= 3


def test_a_full_range_video_keeps_its_range_and_its_colours(tmp_path):
    """A camera's full-range (0-255) YUV (yuvj420p): read with its own range, written back in it, tagged so."""
    source = write_clip(tmp_path / "camera.mp4", frames=12, size=(64, 48), full_range=True, audio=False)
    out = tmp_path / "out.mp4"
    _process(source, out, frames_per_segment=12, scale=1)
    assert _probe(source).color_range == _probe(out).color_range == 2
    assert _probe(source).pix_fmt == _probe(out).pix_fmt == "yuvj420p"
    with open(source, "rb") as f:
        info = _probe(source)
        decoded = video.decode_segment(f, info, video.plan_segments(info, 12)[0])
    ramps = np.stack([pattern(i, 64, 48) for i in range(12)]).astype(int)
    assert np.abs(decoded.astype(int) - ramps).mean() < 5  # the colours written (4:2:0 blurs the ramps)
    assert np.abs(frames_of(out)[0].astype(int) - decoded).mean() < 3


def test_the_assembler_counts_a_retried_segment_once_and_a_failed_segment_fails_its_video(tmp_path):
    from pixelplexus.batch.video import VideoAssembler, VideoSettings
    from pixelplexus.io.locations import Location
    from pixelplexus.io.s3 import S3Settings

    settings = VideoSettings(S3Settings(), Location.parse(str(tmp_path)), "run", 2, None, 18)
    emitted, progress = [], []
    assembler = VideoAssembler(settings, 1, emitted.append, lambda *figures: progress.append(figures))
    base = {"video": 0, "input": "/in/a.mp4", "input_key": "a.mp4", "output_key": "a.mp4", "segments": 2}
    base |= {
        "video_frames": 48,
        "video_seconds": 2.0,
        "frames": 24,
        "seconds": 1.0,
        "width": 64,
        "height": 48,
    }
    ok = {**base, "segment": 0, "status": "ok", "reason": "", "detail": ""}
    bad = {
        **base,
        "segment": 1,
        "status": "error",
        "reason": "corrupt video",
        "detail": "decoded 3 of the 24",
    }
    for row in (ok, ok, bad):  # the first segment's block came back twice (a retry)
        assembler.add(row)
    assert progress[-1] == (48, 48, 2.0, 2.0, 1, 1)
    (row,) = emitted
    assert (row["input_key"], row["status"], row["reason"], row["frames"]) == (
        "a.mp4",
        "error",
        "corrupt video",
        48,
    )
    assert row["seconds"] == 2.0 and not assembler.pending


@pytest.mark.slow
def test_colorize_skip_color_passes_a_colour_video_through_untouched(ray_cluster, tmp_path, weights):
    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    colour = write_clip(inputs / "colour.mp4", frames=12, size=(48, 32))
    gray = [np.repeat(pattern(i, 48, 32)[..., :1], 3, axis=2) for i in range(12)]
    write_clip(inputs / "gray.mp4", images=gray, size=(48, 32))
    result = run_batch(request(weights, "colorize", inputs, output, options={"skip_color": True}))
    rows = {row["input_key"]: row for row in result.manifest.to_pylist()}
    assert rows["colour.mp4"]["status"] == "skipped" and rows["colour.mp4"]["reason"] == "already in colour"
    assert rows["colour.mp4"]["frames"] == 12
    assert (output / "colour.mp4").read_bytes() == colour.read_bytes()
    assert rows["gray.mp4"]["status"] == "ok" and _probe(output / "gray.mp4").frames == 12
    coloured, _ = frames_of(output / "gray.mp4")
    assert not np.array_equal(coloured[..., 0], coloured[..., 2])  # colour was added


@pytest.mark.slow
def test_a_pipeline_that_fails_as_a_whole_still_gives_every_video_its_row(
    ray_cluster, tmp_path, weights, monkeypatch
):
    from pixelplexus.batch import video as batch_video

    inputs, output = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name in ("a.mp4", "b.mkv"):
        write_clip(inputs / name, frames=12, size=(32, 24))
    (inputs / "empty.mp4").write_bytes(b"")

    def lost(*args, **kwargs):
        raise ConnectionError("the cluster went away")

    monkeypatch.setattr(batch_video, "_dataset", lost)
    result = run_batch(request(weights, "enhance", inputs, output))
    assert result.failure == "ConnectionError: the cluster went away"
    rows = {row["input_key"]: (row["status"], row["reason"]) for row in result.manifest.to_pylist()}
    assert rows == {
        "a.mp4": ("error", "not processed: the pipeline failed"),
        "b.mkv": ("error", "not processed: the pipeline failed"),
        "empty.mp4": ("error", "empty file"),
    }
    assert not list(output.glob("*.mp4")) and not list(output.glob("_pixelplexus/segments-*"))
