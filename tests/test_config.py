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


def test_generator_only_steps_is_not_the_lr_warmup_and_the_old_key_still_loads(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text(
        "task: enhance\ngenerator: {arch: compact}\nwarmup_steps: 7\ntrain: {schedule: {warmup_steps: 3}}\n"
    )
    with pytest.warns(DeprecationWarning, match="'warmup_steps' is deprecated: use 'generator_only_steps'"):
        config = load_config(old)
    assert config.generator_only_steps == 7 and config.train.schedule.warmup_steps == 3
    assert "use 'generator_only_steps'" in caplog.text
    with pytest.warns(DeprecationWarning, match="generator_only_steps"):
        assert config.override(warmup_steps=2).generator_only_steps == 2  # --set warmup_steps=2
    with pytest.raises(ConfigError, match="keep only 'generator_only_steps'"):
        parse_config(
            {
                "task": "enhance",
                "generator": {"arch": "compact"},
                "warmup_steps": 1,
                "generator_only_steps": 1,
            }
        )


def test_task_settings_live_in_the_task_section_and_old_top_level_keys_still_load():
    generate = parse_config({"task": "generate", "generator": {"arch": "dcgan_generator"}})
    assert generate.generate.augment == "" and generate.generate.reconstruction_weight == 1.0
    assert generate.enhance is None
    enhance = parse_config({"task": "enhance", "generator": {"arch": "compact"}})
    assert not enhance.enhance.degradation.active and enhance.generate is None
    with pytest.raises(ConfigError, match="'generate' section is for the generate task, not 'enhance'"):
        parse_config({"task": "enhance", "generator": {"arch": "compact"}, "generate": {"augment": "color"}})
    with pytest.raises(ConfigError, match="'enhance' section is for the enhance task"):
        parse_config({"task": "colorize", "generator": {"arch": "pix2pix_unet"}, "enhance": {}})

    with pytest.warns(DeprecationWarning, match="'augment' is deprecated: use 'generate.augment'"):
        old = parse_config(
            {
                "task": "generate",
                "generator": {"arch": "dcgan_generator"},
                "augment": "color",
                "losses": {"reconstruction_weight": 0.5},
            }
        )
    assert old.generate == generate.generate.model_copy(
        update={"augment": "color", "reconstruction_weight": 0.5}
    )
    with pytest.warns(DeprecationWarning, match="'degradation' is deprecated: use 'enhance.degradation'"):
        old = parse_config(
            {"task": "enhance", "generator": {"arch": "compact"}, "degradation": {"jpeg_prob": 0.5}}
        )
    assert old.enhance.degradation.jpeg_prob == 0.5
    with pytest.warns(DeprecationWarning, match="enhance.degradation"):
        assert enhance.override(**{"degradation.noise_prob": 1.0}).enhance.degradation.noise_prob == 1.0
    # an earlier release's config dump (as in checkpoints) held every key for every task
    with pytest.warns(DeprecationWarning, match="'augment' is deprecated and has no effect on 'enhance'"):
        dumped = parse_config(
            {
                **enhance.model_dump(exclude={"generate", "enhance", "generator_only_steps"}),
                "augment": "",
                "degradation": {},
                "warmup_steps": 0,
            }
        )
    assert dumped == enhance


def test_generate_background_takes_names_hex_and_triples_and_round_trips():
    def background(value):
        config = parse_config(
            {"task": "generate", "generator": {"arch": "dcgan_generator"}, "generate": {"background": value}}
        )
        assert (
            parse_config(config.model_dump(mode="json")) == config
        )  # as checkpoints and MLflow params hold it
        return config.image_background

    assert background("white") == (255, 255, 255) and background("Black") == (0, 0, 0)
    assert background("#FF8000") == (255, 128, 0) and background([1, 2, 3]) == (1, 2, 3)
    assert background(None) is None and background("none") is None
    assert (
        parse_config({"task": "generate", "generator": {"arch": "dcgan_generator"}}).image_background is None
    )
    assert parse_config({"task": "enhance", "generator": {"arch": "compact"}}).image_background is None
    for bad in ("purple", "#12345", "#gg0000", [0, 0, 256], [0, 0]):
        with pytest.raises(ConfigError, match=r"generate\.background"):
            background(bad)


def test_tiny_configs_ship_with_the_package():
    from pixelplexus.config import shipped_config, shipped_config_names

    assert {f"{task}-tiny" for task in TASKS} <= set(shipped_config_names())
    for task in TASKS:
        config = shipped_config(f"{task}-tiny")
        assert config.task == task and config.crop_size <= 32 and config.train.max_steps <= 20
    with pytest.raises(ConfigError, match=r"no shipped config 'paint'.*enhance-tiny"):
        shipped_config("paint")
