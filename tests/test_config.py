"""Configuration: YAML → typed config, strict about typos, overrides validated again."""

import pytest
import yaml

from pixelplexus.config import ConfigError, load_config, parse_config
from pixelplexus.tasks import TASKS, get_task


@pytest.mark.parametrize("name", list(TASKS))
def test_default_config_round_trips_through_yaml(tmp_path, name):
    config = TASKS[name].default_config()
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert load_config(path) == config


def test_unknown_key_is_an_error_that_names_it():
    with pytest.raises(ConfigError, match=r"losses\.pixle_weight: Extra inputs are not permitted"):
        parse_config({"task": "enhance", "generator": {"arch": "compact"}, "losses": {"pixle_weight": 1}})


def test_bad_values_are_errors():
    with pytest.raises(ConfigError, match="task"):
        parse_config({"task": "paint", "generator": {"arch": "compact"}})
    with pytest.raises(ConfigError, match="adversarial"):
        parse_config({"task": "enhance", "generator": {"arch": "compact"}, "losses": {"adversarial": "wgan"}})
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/config.yaml")


def test_override_by_dotted_path_validates():
    config = TASKS["enhance"].default_config()
    changed = config.override(**{"losses.pixel_weight": 0.5, "crop_size": 64})
    assert changed.losses.pixel_weight == 0.5 and changed.crop_size == 64 and config.crop_size == 96
    with pytest.raises(ConfigError, match="pixel_weight"):
        config.override(**{"losses.pixel_weight": -1})
    with pytest.raises(ConfigError, match="not a section"):
        config.override(**{"crop_size.x": 1})


def test_vgg_weights_none_and_missing_weights_error_carries_the_fix(tmp_path):
    config = parse_config(
        {"task": "enhance", "generator": {"arch": "compact"}, "losses": {"vgg_weights": "none"}}
    )
    assert config.losses.vgg_weights is None and not config.losses.needs_vgg
    missing = tmp_path / "vgg19.pth"
    with pytest.raises(FileNotFoundError, match=r"losses\.vgg_weights"):
        get_task(config.override(**{"losses.perceptual_weight": 1.0, "losses.vgg_weights": str(missing)}))
    with pytest.raises(ValueError, match=r"losses\.vgg_weights"):
        get_task(config.override(**{"losses.texture_weight": 1.0}))


def test_task_consistency_checks():
    with pytest.raises(ConfigError, match="no discriminator is configured"):
        get_task(
            {"task": "colorize", "generator": {"arch": "pix2pix_unet"}, "losses": {"adversarial": "nsgan"}}
        )
    with pytest.raises(ConfigError, match="multiple of the scale"):
        get_task(
            {"task": "enhance", "generator": {"arch": "compact", "args": {"upscale": 3}}, "crop_size": 64}
        )
    with pytest.raises(ConfigError, match="must equal the generator's resolution"):
        get_task(
            {
                "task": "generate",
                "generator": {"arch": "dcgan_generator", "args": {"resolution": 32}},
                "losses": {"adversarial": "none"},
                "crop_size": 64,
            }
        )
    with pytest.raises(ConfigError, match="'enhance' config was given to the 'colorize' task"):
        TASKS["colorize"](TASKS["enhance"].default_config())
    with pytest.raises(ValueError, match="unknown task 'paint'"):
        get_task("paint")
