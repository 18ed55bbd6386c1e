"""Files by reference: local paths, file://, s3:// on a real (moto) S3 server, and MLflow artifact URIs."""

import boto3
import pytest
import torch

from pixelplexus.io.files import localize, read_bytes, scheme_of
from pixelplexus.tasks import EnhanceTask
from pixelplexus.weights import WeightsError, generator_bytes, load_generator


def test_local_paths_and_file_uris_pass_through(tmp_path):
    path = tmp_path / "a b.bin"
    path.write_bytes(b"xyz")
    assert localize(path) == path and localize(str(path)) == path
    assert localize(path.as_uri()) == path
    assert read_bytes(path.as_uri()) == b"xyz"
    assert scheme_of("C:/weights.bin") == "" and scheme_of("s3://b/k") == "s3"


def test_web_urls_are_refused():
    with pytest.raises(ValueError, match="nothing is downloaded from the web"):
        localize("https://example.com/vgg19.pth")


def test_s3_objects_are_fetched_and_refetched_when_they_change(s3_bucket, tmp_path):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="models/g.bin", Body=b"first")
    uri = f"s3://{s3_bucket}/models/g.bin"
    first = localize(uri, cache_dir=tmp_path)
    assert first.read_bytes() == b"first" and localize(uri, cache_dir=tmp_path) == first  # cached
    s3.put_object(Bucket=s3_bucket, Key="models/g.bin", Body=b"second")
    assert read_bytes(uri, cache_dir=tmp_path) == b"second"


def test_missing_s3_object_and_bucket_say_which(s3_bucket, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such object"):
        localize(f"s3://{s3_bucket}/nope.bin", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket-x' does not exist"):
        localize("s3://no-such-bucket-x/a.bin", cache_dir=tmp_path)


def test_generator_and_vgg_weights_load_from_s3(s3_bucket, tmp_path):
    from pixelplexus.archs.vgg_arch import VGG19Features

    task = EnhanceTask(
        {"generator": {"arch": "compact", "args": {"num_feat": 8, "num_conv": 1, "upscale": 2}}}
    )
    generator = task.build_generator()
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=s3_bucket, Key="w/g.safetensors", Body=generator_bytes(generator, task.weights_info(generator))
    )
    loaded, info = load_generator(f"s3://{s3_bucket}/w/g.safetensors", task="enhance")
    assert info.arch == "compact" and torch.equal(
        loaded.state_dict()["body.0.weight"], generator.state_dict()["body.0.weight"]
    )
    with pytest.raises(WeightsError, match="no such object"):
        load_generator(f"s3://{s3_bucket}/w/missing.safetensors")

    vgg_path = tmp_path / "vgg.pth"
    torch.save(VGG19Features(["conv2_1"]).state_dict(), vgg_path)
    s3.upload_file(str(vgg_path), s3_bucket, "vgg/vgg19.pth")
    config = task.config.override(
        **{
            "losses.perceptual_weight": 1.0,
            "losses.perceptual_layers": {"conv2_1": 1.0},
            "losses.vgg_weights": f"s3://{s3_bucket}/vgg/vgg19.pth",
        }
    )
    assert EnhanceTask(config).perceptual is not None
    with pytest.raises(FileNotFoundError, match=r"VGG19 weights not found .*losses\.vgg_weights"):
        EnhanceTask(config.override(**{"losses.vgg_weights": f"s3://{s3_bucket}/vgg/none.pth"}))


def test_generator_loads_from_an_mlflow_run(mlflow_store, tmp_path):
    import mlflow

    task = EnhanceTask(
        {"generator": {"arch": "compact", "args": {"num_feat": 8, "num_conv": 1, "upscale": 2}}}
    )
    generator = task.build_generator()
    local = tmp_path / "upload" / "g.safetensors"
    local.parent.mkdir()
    local.write_bytes(generator_bytes(generator, task.weights_info(generator)))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(local), artifact_path="weights")
    _, info = load_generator(f"runs:/{run.info.run_id}/weights/g.safetensors", task="enhance")
    assert info.task == "enhance"
    _, same = load_generator(f"runs:/{run.info.run_id}/weights")  # a folder with exactly one weights file
    assert same == info
    with pytest.raises(WeightsError, match="not found in the MLflow tracking server"):
        load_generator(f"runs:/{run.info.run_id}/weights/other.safetensors")
