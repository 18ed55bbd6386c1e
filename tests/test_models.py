"""Model references: checked before work starts, with a reason when they cannot be used."""

from __future__ import annotations

import boto3
import pytest
import torch

from pixelplexus import demo
from pixelplexus.config import parse_config
from pixelplexus.references import ModelReferenceError, bundled_models, default_reference, resolve_model
from pixelplexus.tasks import get_task
from pixelplexus.weights import save_generator


@pytest.fixture
def weights(tmp_path, tiny_config):
    """task → a tiny weights file of that task."""
    paths = {}
    for name in ("enhance", "colorize"):
        task = get_task(tiny_config(name))
        generator = task.build_generator()
        paths[name] = save_generator(
            tmp_path / f"{name}.safetensors", generator, task.weights_info(generator)
        )
    return paths


def test_a_weights_file_resolves_and_loads(weights):
    model = resolve_model(weights["enhance"], "enhance", scale=2)
    assert model.info.arch == "compact" and model.info.scale == 2
    assert model.version == f"sha256:{model.digest}"
    assert model.describe()["reference"] == str(weights["enhance"])
    generator = model.load()
    assert not generator.training and generator(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    ("reference", "task", "scale", "message"),
    [
        ("enhance", "colorize", None, "holds a 'enhance' model"),
        ("enhance", "enhance", 4, "is a ×2 model; ×4 was asked for"),
        ("missing.safetensors", "enhance", None, "neither a weights file nor a bundled name"),
        ("https://example.com/w.safetensors", "enhance", None, "nothing is downloaded from the web"),
    ],
)
def test_bad_references_say_why(weights, reference, task, scale, message):
    ref = str(weights[reference]) if reference in weights else reference
    with pytest.raises(ModelReferenceError, match=message):
        resolve_model(ref, task, scale=scale)


def test_a_file_that_is_not_weights_is_refused(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_bytes(b"hello")
    with pytest.raises(ModelReferenceError, match="not a readable safetensors file"):
        resolve_model(path, "enhance")


BUNDLED = {
    "enhance-x4": 4,
    "enhance-x2": 2,
    "enhance-x4-gan": 4,
    "enhance-x4-archive": 4,
    "colorize": None,
    "generate": None,
}


def test_the_package_ships_trained_defaults_for_every_task():
    bundled = bundled_models()
    assert set(BUNDLED) <= set(bundled), f"missing bundled weights: {set(BUNDLED) - set(bundled)}"
    assert sum(path.stat().st_size for path in bundled.values()) <= 30 * 2**20  # the budget
    assert (
        default_reference("enhance") == "enhance-x4" and default_reference("enhance", scale=2) == "enhance-x2"
    )
    for name, scale in BUNDLED.items():
        task = name.split("-")[0]
        model = resolve_model(name, task)
        assert model.info.scale == scale and model.info.run_id, name  # produced by a tracked training run
        assert model.load() is not None
    assert resolve_model(None, "colorize").reference == "colorize"
    assert (
        demo.resolve_models()["enhance"].reference == "enhance-x4-archive"
    )  # the demo's inputs are archive copies
    with pytest.raises(ModelReferenceError, match="no bundled weights named 'enhance-x3'"):
        default_reference("enhance", scale=3)


def test_s3_references_name_the_missing_bucket_or_object(s3_bucket, weights):
    boto3.client("s3").upload_file(str(weights["colorize"]), s3_bucket, "m/colorize.safetensors")
    assert resolve_model(f"s3://{s3_bucket}/m/colorize.safetensors", "colorize").info.task == "colorize"
    with pytest.raises(ModelReferenceError, match="no such object"):
        resolve_model(f"s3://{s3_bucket}/m/none.safetensors", "colorize")
    with pytest.raises(ModelReferenceError, match="bucket 'no-such-bucket-pp' does not exist"):
        resolve_model("s3://no-such-bucket-pp/m.safetensors", "colorize")


def test_mlflow_registered_versions_and_aliases(mlflow_store, weights):
    from mlflow import MlflowClient

    from pixelplexus.training.tracking import register_model

    client = MlflowClient(mlflow_store)
    run_id = client.create_run(client.get_experiment_by_name("tests").experiment_id).info.run_id
    version = register_model(mlflow_store, run_id, "enhance", weights["enhance"], {"val_psnr_y": 30.0})
    client.set_registered_model_alias("pixelplexus-enhance", "champion", version)
    by_number = resolve_model(f"models:/pixelplexus-enhance/{version}", "enhance")
    by_alias = resolve_model("models:/pixelplexus-enhance@champion", "enhance")
    assert by_number.version == by_alias.version == version
    assert by_number.data == weights["enhance"].read_bytes()
    assert client.get_model_version("pixelplexus-enhance", version).tags["val_psnr_y"] == "30.0"
    with pytest.raises(ModelReferenceError, match="not found in the MLflow tracking server"):
        resolve_model("models:/pixelplexus-enhance/99", "enhance")


def test_export_writes_the_checked_weights(weights, tmp_path):
    from pixelplexus.references import export_model

    dest = tmp_path / "bundle" / "enhance-x2.safetensors"
    exported = export_model(str(weights["enhance"]), "enhance", dest)
    assert dest.read_bytes() == weights["enhance"].read_bytes()
    assert resolve_model(dest, "enhance").digest == exported.digest
    with pytest.raises(ModelReferenceError, match="holds a 'enhance' model"):
        export_model(str(weights["enhance"]), "colorize", tmp_path / "wrong.safetensors")
    assert not (tmp_path / "wrong.safetensors").exists()


def test_training_starts_from_init_generator(weights, tiny_config):
    from pixelplexus.training.step import build_networks

    config = parse_config(tiny_config("enhance")).override(
        **{"train.init_generator": str(weights["enhance"])}
    )
    nets = build_networks(get_task(config))
    expected = resolve_model(weights["enhance"], "enhance").load().state_dict()
    for name, tensor in nets.generator.state_dict().items():
        torch.testing.assert_close(tensor, expected[name])


def test_init_generator_must_fit_the_configured_generator(weights, tiny_config):
    from pixelplexus.training.step import build_networks

    wider = parse_config(tiny_config("enhance")).override(
        **{"generator.args.num_feat": 24, "train.init_generator": str(weights["enhance"])}
    )
    with pytest.raises(ModelReferenceError, match="does not fit the configured generator"):
        build_networks(get_task(wider))
    other_arch = parse_config(tiny_config("enhance")).override(
        **{
            "generator.arch": "srresnet",
            "generator.args": {"num_feat": 8, "num_block": 1, "upscale": 2},
            "train.init_generator": str(weights["enhance"]),
        }
    )
    with pytest.raises(ModelReferenceError, match="is a 'compact' generator; the config builds 'srresnet'"):
        build_networks(get_task(other_arch))


def test_interpolation_blends_two_trainings_of_one_network(tmp_path, weights, capsys):
    from dataclasses import replace

    from pixelplexus.archs import build_network
    from pixelplexus.cli import main

    first = str(weights["enhance"])
    info = resolve_model(first, "enhance").info
    torch.manual_seed(1)
    other = build_network(info.arch, **info.args)
    second = save_generator(tmp_path / "second.safetensors", other, replace(info, run_id="run-b"))
    states = [resolve_model(ref, "enhance").load().state_dict() for ref in (first, second)]
    for weight in (0.0, 0.3, 1.0):
        dest = tmp_path / f"blend-{weight}.safetensors"
        assert (
            main(["models", "interpolate", "enhance", first, str(second), str(dest), "--weight", str(weight)])
            == 0
        )
        blended = resolve_model(str(dest), "enhance")
        for name, tensor in blended.load().state_dict().items():
            torch.testing.assert_close(tensor, (1 - weight) * states[0][name] + weight * states[1][name])
        assert blended.info.run_id == "run-b" and blended.info.extra["interpolated"]["weight"] == weight
    sources = blended.info.extra["interpolated"]["from"]
    assert [s["reference"] for s in sources] == ["enhance.safetensors", "second.safetensors"]
    wider_args = {**info.args, "num_feat": info.args["num_feat"] * 2}
    wider = build_network(info.arch, **wider_args)
    wider_path = save_generator(tmp_path / "wider.safetensors", wider, replace(info, args=wider_args))
    refused = tmp_path / "refused.safetensors"
    argv = ["models", "interpolate", "enhance", first, str(wider_path), str(refused), "--weight", "0.5"]
    assert main(argv) == 2
    assert "different networks" in capsys.readouterr().err and not refused.exists()
    assert (
        main(["models", "interpolate", "enhance", first, str(second), str(refused), "--weight", "1.5"]) == 2
    )
    assert not refused.exists()


def test_a_soup_is_the_mean_of_several_trainings_of_one_network(tmp_path, weights, capsys):
    from dataclasses import replace

    from pixelplexus.archs import build_network
    from pixelplexus.cli import main

    first = str(weights["enhance"])
    info = resolve_model(first, "enhance").info
    others = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = build_network(info.arch, **info.args)
        others.append(
            save_generator(tmp_path / f"run-{seed}.safetensors", net, replace(info, run_id=f"run-{seed}"))
        )
    refs = [first, *map(str, others)]
    states = [resolve_model(ref, "enhance").load().state_dict() for ref in refs]
    dest = tmp_path / "soup.safetensors"
    assert main(["models", "soup", "enhance", *refs, str(dest)]) == 0
    soup = resolve_model(str(dest), "enhance")
    for name, tensor in soup.load().state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, sum(state[name] for state in states) / 3)
    assert soup.info.run_id == info.run_id and soup.info.arch == info.arch
    sources = soup.info.extra["averaged"]["from"]
    assert [s["reference"] for s in sources] == [
        "enhance.safetensors",
        "run-1.safetensors",
        "run-2.safetensors",
    ]
    assert len({s["digest"] for s in sources}) == 3
    assert [s.get("run_id") for s in sources] == [info.run_id, "run-1", "run-2"]
    wider_args = {**info.args, "num_feat": info.args["num_feat"] * 2}
    wider = save_generator(
        tmp_path / "wider.safetensors", build_network(info.arch, **wider_args), replace(info, args=wider_args)
    )
    refused = tmp_path / "refused.safetensors"
    assert main(["models", "soup", "enhance", first, str(others[0]), str(wider), str(refused)]) == 2
    assert "different networks" in capsys.readouterr().err and not refused.exists()
    assert main(["models", "soup", "enhance", first, str(refused)]) == 2
    assert "at least two models" in capsys.readouterr().err and not refused.exists()
