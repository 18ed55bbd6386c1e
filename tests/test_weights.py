"""Weights files: safetensors with self-describing metadata, loaded safely with clear errors."""

import pytest
import torch
from safetensors.torch import save

from pixelplexus.tasks import EnhanceTask, get_task
from pixelplexus.weights import WeightsError, load_generator, read_info, save_generator


@pytest.fixture
def enhance():
    return EnhanceTask(
        {"generator": {"arch": "compact", "args": {"num_feat": 8, "num_conv": 2, "upscale": 2}}}
    )


def test_round_trip_rebuilds_the_same_network(tmp_path, enhance):
    torch.manual_seed(0)
    generator = enhance.build_generator().eval()
    path = save_generator(
        tmp_path / "sub" / "g.safetensors", generator, enhance.weights_info(generator, run_id="abc")
    )
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left behind

    loaded, info = load_generator(path, task="enhance")
    assert (info.task, info.arch, info.scale, info.run_id) == ("enhance", "compact", 2, "abc")
    assert info.args == {"num_feat": 8, "num_conv": 2, "upscale": 2}
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), generator(x))
    assert not loaded.training
    assert read_info(path.read_bytes()) == info  # bytes work too


def test_every_task_round_trips(tmp_path):
    configs = {
        "enhance": {"arch": "srresnet", "args": {"num_feat": 8, "num_block": 1, "upscale": 3}},
        "colorize": {"arch": "pix2pix_unet", "args": {"num_downs": 5, "ngf": 4}},
        "generate": {"arch": "dcgan_generator", "args": {"z_dim": 8, "ngf": 4, "resolution": 16}},
    }
    for name, generator_spec in configs.items():
        extra = {"crop_size": 16} if name == "generate" else {}
        task = get_task(
            {"task": name, "generator": generator_spec, "losses": {"adversarial": "none"}, **extra}
        )
        generator = task.build_generator()
        path = save_generator(tmp_path / f"{name}.safetensors", generator, task.weights_info(generator))
        loaded, info = load_generator(path, task=name)
        assert info.task == name and type(loaded) is type(generator)
        for key, tensor in generator.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], tensor)


def test_wrong_task_is_refused(tmp_path, enhance):
    generator = enhance.build_generator()
    path = save_generator(tmp_path / "g.safetensors", generator, enhance.weights_info(generator))
    with pytest.raises(WeightsError, match=r"holds a 'enhance' generator .* not a 'colorize' one"):
        load_generator(path, task="colorize")


def test_missing_tensors_are_named(tmp_path, enhance):
    generator = enhance.build_generator()
    state = generator.state_dict()
    dropped = sorted(state)[0]
    del state[dropped]
    path = tmp_path / "partial.safetensors"
    path.write_bytes(save(state, metadata=enhance.weights_info(generator).to_metadata()))
    with pytest.raises(WeightsError, match=f"missing tensors {dropped}"):
        load_generator(path)


def test_shape_mismatch_is_named(tmp_path, enhance):
    generator = enhance.build_generator()
    info = enhance.weights_info(generator)
    bigger = EnhanceTask(
        {"generator": {"arch": "compact", "args": {"num_feat": 16, "num_conv": 2, "upscale": 2}}}
    )
    path = tmp_path / "mismatch.safetensors"
    path.write_bytes(save(bigger.build_generator().state_dict(), metadata=info.to_metadata()))
    with pytest.raises(WeightsError, match="has shape"):
        load_generator(path)


def test_not_a_weights_file(tmp_path):
    pickle = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_generator(pickle)
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes(save({"w": torch.zeros(2)}))
    with pytest.raises(WeightsError, match="not a PixelPlexus weights file"):
        load_generator(plain)
    with pytest.raises(WeightsError, match="not found"):
        load_generator(tmp_path / "nope.safetensors")


def test_read_info_checks_the_whole_file_as_loading_would(tmp_path, enhance):
    """``read_info`` (what the batch driver checks a model with, without torch) refuses what safetensors'
    loader refuses: a file cut short, data offsets that overlap or leave a gap, a header that is not JSON."""
    import json
    import struct

    good = save_generator(
        tmp_path / "good.safetensors",
        enhance.build_generator(),
        enhance.weights_info(enhance.build_generator()),
    ).read_bytes()
    assert read_info(good).arch == "compact"
    size = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8 : 8 + size])
    first = next(k for k in header if k != "__metadata__")

    def with_header(changed: dict) -> bytes:
        body = json.dumps(changed).encode()
        return struct.pack("<Q", len(body)) + body + good[8 + size :]

    shifted = dict(
        header, **{first: dict(header[first], data_offsets=[4, header[first]["data_offsets"][1] + 4])}
    )
    cases = {
        "cut short": good[:-3],
        "offsets shifted": with_header(shifted),
        "not JSON": struct.pack("<Q", 5) + b"{oops" + good[8 + size :],
        "header too long": struct.pack("<Q", len(good)) + good[8:],
    }
    for name, data in cases.items():
        for reader in (read_info, load_generator):  # the loader agrees
            try:
                reader(data)
            except WeightsError as exc:
                assert "not a readable safetensors file" in str(exc), (name, reader.__name__)
            else:
                pytest.fail(f"{reader.__name__} accepted a file {name}")
