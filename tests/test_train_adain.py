"""Training the arbitrary-style network through the shared loop: its loss falls, it resumes, it saves one
`.keras` file, its data are random content x style pairs, and its flags fail in one line."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import skimage_rgb
import tf_nst
from tf_nst import adain
from tf_nst import train
from tf_nst import train_data
from tf_nst import vgg
from tf_nst.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save(path, image, size):
    image = Image.fromarray(image)
    image.thumbnail((size, size))
    image.save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Content photos (one nested, one unreadable) and style images (one unreadable)."""
    content, style = tmp_path_factory.mktemp("content"), tmp_path_factory.mktemp("styles")
    (content / "nested").mkdir()
    for name, folder in (("chelsea", content), ("coffee", content / "nested"), ("astronaut", style),
                         ("rocket", style)):
        _save(folder / f"{name}.png", skimage_rgb(name), 96)
    (content / "broken.jpg").write_text("not an image")
    (style / "empty.png").write_bytes(b"")
    return str(content), str(style)


def _config(folders, train_dir, **overrides):
    settings = dict(
        dataset_dir=folders[0], style_dir=folders[1], train_dir=str(train_dir), architecture="adain",
        image_size=32, resize=48, batch_size=2, num_steps=3, checkpoint_every=100, summary_every=2, print_every=1,
        width_multiplier=0.25, extractor=vgg.ExtractorConfig(backbone="vgg16", weights="none"))
    return train.TrainConfig(**{**settings, **overrides})


def test_a_few_steps_at_64_px_decrease_the_loss(folders, tmp_path):
    config = _config(folders, tmp_path / "run", image_size=64, resize=64, num_steps=30, learning_rate=1e-3,
                     summary_every=0)
    recorder = train.History()
    train.train(config, recorder)
    totals = [recorder.history[step]["total"] for step in sorted(recorder.history)]
    first, last = np.mean(totals[:3]), np.mean(totals[-3:])
    print(f"adain total loss: mean of the first 3 steps {first:.4g}, of the last 3 {last:.4g}")
    assert len(totals) == 30 and all(np.isfinite(totals))
    assert last < 0.7 * first
    assert recorder.history[30]["tv"] == 0  # the arbitrary network's own weights, not the johnson defaults


@pytest.fixture(scope="module")
def short_run(folders, tmp_path_factory):
    config = _config(folders, tmp_path_factory.mktemp("adain_run"))
    recorder = train.History()
    return config, train.train(config, recorder), recorder


def test_unreadable_files_in_both_folders_are_skipped_and_counted(short_run, folders):
    _, result, recorder = short_run
    assert sorted(os.path.basename(path) for path in result.skipped_files) == ["broken.jpg", "empty.png"]
    assert (recorder.info.num_images, recorder.info.num_style_images) == (2, 2)
    assert result.step == 3 and sorted(recorder.history) == [1, 2, 3]
    assert set(result.terms) == {"total", "content", "style", "tv"}


def test_the_whole_network_is_saved_in_one_file_with_the_trained_decoder(short_run):
    config, result, _ = short_run
    model = keras.models.load_model(result.model_path)
    trainer = train.Trainer(config, train.make_strategy("default"))
    assert trainer.restore() == 3
    for got, expected in zip(model.get_layer("decoder").get_weights(), trainer.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    fresh = adain.build_model(adain.encoder_config(config.extractor), config.width_multiplier)
    for got, expected in zip(model.get_layer("encoder").get_weights(), fresh.get_layer("encoder").get_weights(),
                             strict=True):
        np.testing.assert_array_equal(got, expected)  # the frozen encoder did not move


def test_checkpoints_hold_the_decoder_and_its_adam_moments_not_the_encoder(short_run):
    config, _, _ = short_run
    sizes = [int(np.prod(shape)) for _, shape in tf.train.list_variables(tf.train.latest_checkpoint(config.train_dir))]
    decoder = adain.build_decoder(config.extractor.backbone, config.width_multiplier).count_params()
    # The decoder's weights and Adam's two moments of each; the scalars (step, counters) are size 1.
    assert sum(size for size in sizes if size > 1) == 3 * decoder


def test_a_rerun_resumes_from_the_checkpoint(short_run):
    config, _, _ = short_run
    import dataclasses  # pylint: disable=import-outside-toplevel

    recorder = train.History()
    result = train.train(dataclasses.replace(config, num_steps=5, summary_every=0), recorder)
    assert recorder.info.start_step == 3 and sorted(recorder.history) == [4, 5] and result.step == 5


def test_summaries_hold_the_losses_and_a_content_by_style_grid(short_run):
    config, _, _ = short_run
    tags, shapes = set(), []
    for name in os.listdir(config.train_dir):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(config.train_dir, name)):
                for value in event.summary.value:
                    tags.add(value.tag)
                    if value.tag == "preview/stylized":
                        shapes.append(tf.io.decode_png(value.tensor.string_val[2]).shape)
    assert {"loss/total", "loss/content", "loss/style", "preview/stylized"} <= tags
    size = (train.NUM_PREVIEW_IMAGES + 1) * config.image_size
    assert shapes and all(shape == (size, size, 3) for shape in shapes)


def test_pairs_are_drawn_independently_from_the_two_folders(tmp_path):
    """Three flat content and three flat style images: a locked pairing would show only three pairs."""
    paths = {}
    for kind, levels in (("content", (10, 20, 30)), ("style", (100, 110, 120))):
        paths[kind] = []
        for level in levels:
            path = str(tmp_path / f"{kind}{level}.png")
            Image.fromarray(np.full((20, 30, 3), level, np.uint8)).save(path)
            paths[kind].append(path)
    pairs = train_data.make_pair_dataset(paths["content"], paths["style"], image_size=16, batch_size=3, seed=0,
                                         resize=24)
    seen = set()
    for content, style in pairs.take(8):
        assert content.shape == style.shape == (3, 16, 16, 3)
        seen.update(zip(np.round(content.numpy()[:, 0, 0, 0]), np.round(style.numpy()[:, 0, 0, 0])))
    assert len(seen) > 3 and {pair[0] for pair in seen} == {10, 20, 30} and {pair[1] for pair in seen} == {
        100, 110, 120}


def test_a_centre_crop_is_taken_after_resizing_the_shorter_side(tmp_path):
    path = str(tmp_path / "wide.png")
    image = np.zeros((40, 120, 3), np.uint8)
    image[:, 55:65] = 255  # a white band at the centre
    Image.fromarray(image).save(path)
    crop = train_data.load_crop(path, 16, random=False, resize=80).numpy()
    # Resized to 80 x 240, the 10 px band becomes 20 px wide: it fills the 16 px centre crop.
    assert crop.shape == (16, 16, 3) and crop.min() > 200


@pytest.mark.parametrize("overrides, message", [
    (dict(style_dir=None), "give style_dir"),
    (dict(style_image="style.png"), "give style_dir"),
    (dict(image_size=36), "multiple of 8"),
    (dict(image_size=32, resize=24), "resize 24 is smaller"),
    (dict(architecture="gatys"), "unknown architecture 'gatys'"),
])
def test_bad_configs_are_refused(folders, tmp_path, overrides, message):
    with pytest.raises(UserInputError, match=message):
        train.validate_config(_config(folders, tmp_path / "run", **overrides))


def test_the_johnson_network_refuses_a_style_folder(folders, tmp_path):
    config = _config(folders, tmp_path / "run", architecture="johnson", style_image="style.png")
    with pytest.raises(UserInputError, match="give style_image, not style_dir"):
        train.validate_config(config)


def _cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "train", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)


@pytest.mark.parametrize("extra, message", [
    ([], "--architecture=adain needs --style_dir"),
    (["--style_dir={empty}"], "no image files under"),
    (["--style_dir={styles}", "--style=x.png"], "--style does not apply to --architecture=adain"),
    (["--style_dir={styles}", "--style_layers=block1_conv1"], "--style_layers does not apply"),
    (["--style_dir={styles}", "--train_image_size=60"], "--train_image_size=60 must be a multiple of 8"),
    (["--style_dir={styles}", "--train_image_size=64", "--train_resize=32"], "--train_resize=32 is smaller"),
])
def test_cli_flag_errors_are_one_line(folders, tmp_path, extra, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [arg.format(empty=empty, styles=folders[1]) for arg in extra]
    result = _cli("--architecture=adain", f"--dataset_dir={folders[0]}", f"--train_dir={tmp_path / 'run'}", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_style_folder_for_the_johnson_network(folders, tmp_path):
    result = _cli(f"--dataset_dir={folders[0]}", f"--style_dir={folders[1]}", f"--train_dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "--style_dir does not apply to --architecture=johnson" in result.stderr


def test_cli_trains_and_writes_the_model(folders, tmp_path):
    train_dir = tmp_path / "run"
    result = _cli("--architecture=adain", f"--dataset_dir={folders[0]}", f"--style_dir={folders[1]}",
                  f"--train_dir={train_dir}", "--backbone=vgg16", "--weights=none", "--train_image_size=32",
                  "--train_resize=40", "--batch_size=2", "--width_multiplier=0.25", "--num_train_steps=2",
                  "--summary_every=0", "--print_every=1", "--style_weight=3")
    assert result.returncode == 0, result.stderr
    assert "training on 2 images x 2 style images (2 unreadable skipped)" in result.stdout
    model = keras.models.load_model(str(train_dir / train.MODEL_FILE))
    output = model({"content": np.full((1, 20, 28, 3), 128, np.float32),
                    "style": np.full((1, 16, 16, 3), 60, np.float32), "alpha": np.ones(1, np.float32)})
    assert output.shape == (1, 20, 28, 3)
    # The trained model is what stylize takes: without --style, one line and no traceback; with one, a picture.
    stylized = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "stylize", f"--model={train_dir}",
                               f"--input={folders[0]}", f"--output_dir={tmp_path / 'out'}"], capture_output=True,
                              text=True, timeout=120, cwd=ROOT, check=False)
    assert stylized.returncode == 2 and "is an arbitrary-style model; give it --style" in stylized.stderr
    assert len(stylized.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    picture = tf_nst.load_stylizer(str(train_dir))(np.full((20, 28, 3), 128, np.uint8),
                                                   style=np.full((16, 16, 3), 60, np.uint8))
    assert picture.shape == (20, 28, 3) and picture.dtype == np.uint8


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_and_exports_float32(folders, tmp_path, precision):
    config = _config(folders, tmp_path / "run", precision=precision, summary_every=0)
    result = train.train(config)
    assert result.step == 3 and all(np.isfinite(value) for value in result.terms.values())
    model = keras.models.load_model(result.model_path)
    assert {weight.dtype for weight in model.get_layer("decoder").weights} == {"float32"}
    output = model({"content": np.full((1, 16, 16, 3), 90, np.float32), "style": np.full((1, 8, 8, 3), 9, np.float32),
                    "alpha": np.ones(1, np.float32)})
    assert output.dtype == "float32"


_MIRRORED_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    import keras
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tf_nst import train, vgg

    config = train.TrainConfig(
        dataset_dir="unused", train_dir=sys.argv[1], architecture="adain", style_dir="unused", image_size=32,
        batch_size=4, width_multiplier=0.25, extractor=vgg.ExtractorConfig(backbone="vgg16", weights="none"))
    rng = np.random.default_rng(0)
    batch = tuple(tf.constant(rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)) for _ in range(2))
    report, initial = {}, None
    for name in ("default", "mirrored"):
        strategy = train.make_strategy(name)
        trainer = train.Trainer(dataclasses.replace(config, strategy=name, train_dir=sys.argv[1] + name), strategy)
        if initial is None:
            initial = trainer.model.get_weights()
        else:
            trainer.model.set_weights(initial)
        terms = trainer.train_step(next(iter(trainer.distribute(tf.data.Dataset.from_tensors(batch)))))
        report[name] = [strategy.num_replicas_in_sync, {key: float(value) for key, value in terms.items()}]
    print(json.dumps(report))
""")


def test_content_style_pairs_split_over_two_mirrored_devices_match_one(tmp_path):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    (single_replicas, single), (mirrored_replicas, mirrored) = report["default"], report["mirrored"]
    assert (single_replicas, mirrored_replicas) == (1, 2)
    for name in ("total", "content", "style"):
        assert mirrored[name] == pytest.approx(single[name], rel=1e-5), name


def _numpy_moments(features):
    features = np.asarray(features, np.float64)
    return features.mean(axis=(1, 2)), np.sqrt(features.var(axis=(1, 2)) + adain.EPSILON)


def test_the_loss_is_relu4_1_reconstruction_of_the_adain_target_plus_style_moments(folders, tmp_path):
    config = _config(folders, tmp_path / "run")
    trainer = train.Trainer(config, train.make_strategy("default"))
    encoder, decoder = trainer.recipe.encoder, trainer.model
    rng = np.random.default_rng(3)
    content = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    style = rng.uniform(0, 120, (2, 32, 32, 3)).astype(np.float32)
    total, terms = trainer.recipe.losses(decoder, (tf.constant(content), tf.constant(style)))

    content_relu4 = encoder(content)[adain.ENCODER_LAYER].numpy().astype(np.float64)
    style_features = {name: value.numpy() for name, value in encoder(style).items()}
    (content_mean, content_std), (style_mean, style_std) = (
        _numpy_moments(content_relu4), _numpy_moments(style_features[adain.ENCODER_LAYER]))
    target = ((content_relu4 - content_mean[:, None, None]) / content_std[:, None, None] * style_std[:, None, None]
              + style_mean[:, None, None])
    decoded_features = {name: value.numpy() for name, value in encoder(decoder(target.astype(np.float32))).items()}
    relu4 = decoded_features[adain.ENCODER_LAYER]
    content_error = np.mean(((relu4 - target) ** 2).sum((1, 2, 3)) / (target ** 2).sum((1, 2, 3)))
    style_errors = []
    for name in adain.STYLE_LAYERS:
        (mean, std), (target_mean, target_std) = _numpy_moments(decoded_features[name]), _numpy_moments(
            style_features[name])
        error = ((mean - target_mean) ** 2).sum(1) + ((std - target_std) ** 2).sum(1)
        style_errors.append(np.mean(error / ((target_mean ** 2).sum(1) + (target_std ** 2).sum(1))))
    weights = adain.loss_weights()
    assert terms["content"].numpy() == pytest.approx(weights.content * content_error, rel=1e-3)
    assert terms["style"].numpy() == pytest.approx(weights.style * np.mean(style_errors), rel=1e-3)
    assert total.numpy() == pytest.approx(terms["content"].numpy() + terms["style"].numpy(), rel=1e-5)
