"""Training the stylizer: it learns a style (real ImageNet VGG19 features), resumes after a kill, matches a
single device on two mirrored ones to float32 rounding, skips and counts unreadable files, and refuses an
empty folder in one line."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import skimage_rgb
from tf_nst import image_io
from tf_nst import losses
from tf_nst import train
from tf_nst import train_data
from tf_nst import vgg
from tf_nst.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Random VGG16 weights and tiny crops: for the tests of mechanics, not of quality.
TINY_CLI_FLAGS = ["--backbone=vgg16", "--weights=none", "--train_image_size=32", "--train_style_size=32",
                  "--batch_size=2", "--width_multiplier=0.25", "--summary_every=0"]


def _save_thumbnail(path, name, size):
    image = Image.fromarray(skimage_rgb(name))
    image.thumbnail((size, size))
    image.save(path)
    return str(path)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """Two small training images."""
    folder = tmp_path_factory.mktemp("dataset")
    for name in ("chelsea", "coffee"):
        _save_thumbnail(folder / f"{name}.png", name, 96)
    return str(folder)


def _tiny_config(dataset_dir, train_dir, style_image, **overrides):
    settings = dict(
        dataset_dir=dataset_dir, train_dir=train_dir, style_image=style_image, image_size=32, style_size=32,
        batch_size=2, num_steps=3, checkpoint_every=100, summary_every=2, print_every=1,
        width_multiplier=0.25, extractor=vgg.ExtractorConfig(backbone="vgg16", weights="none"))
    return train.TrainConfig(**{**settings, **overrides})


@pytest.mark.parametrize("height, width", [(30, 100), (100, 30), (10, 12), (64, 64)])
def test_training_crops_are_square_for_any_aspect_ratio(tmp_path, height, width):
    path = str(tmp_path / "image.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)).save(path)
    for random in (True, False):
        crop = train_data.load_crop(path, 32, random).numpy()
        assert crop.shape == (32, 32, 3) and crop.dtype == np.float32
        assert crop.min() >= 0 and crop.max() <= 255


@pytest.mark.parametrize("architecture", ["johnson", "finetune"])
def test_the_one_style_networks_crop_after_the_resize_they_are_given(tmp_path, architecture):
    """Stripes 2 px apart in a 32 px image: kept at resize=32, blurred to grey when shrunk to the 16 px crop."""
    path = str(tmp_path / "stripes.png")
    Image.fromarray(np.tile(np.array([0, 255], np.uint8)[None, :, None], (32, 16, 3))).save(path)
    files = train_data.DatasetFiles((path,), ())
    for resize, sharp in ((None, False), (32, True)):
        config = _tiny_config(str(tmp_path), str(tmp_path / "run"), path, image_size=16, resize=resize,
                              architecture=architecture)
        recipe = train.ARCHITECTURES[architecture](config, None)
        crops = np.concatenate([next(iter(recipe.dataset(files, seed=0))).numpy(),
                                recipe.preview_inputs(files, 1).numpy()])
        assert (crops.std() > 100) == sharp, (resize, crops.std())


def _relative_gram_distance(extractor, images, style_grams):
    """Mean over the style layers of ||G(images) - G(style)||^2 / ||G(style)||^2 (losses.style_layer_loss)."""
    features = extractor(images)
    return float(np.mean([losses.style_layer_loss(features[name], gram)
                          for name, gram in style_grams.items()]))


def test_overfits_a_tiny_set_with_real_vgg19_features(tmp_path, dataset_dir, image_files, vgg19_q8_weights):
    extractor_config = vgg.ExtractorConfig(
        backbone="vgg19", weights=vgg19_q8_weights,
        style_layers=("block1_conv1", "block2_conv1", "block3_conv1"), content_layers=("block3_conv1",))
    config = train.TrainConfig(
        dataset_dir=dataset_dir, train_dir=str(tmp_path / "run"), style_image=image_files["style"],
        image_size=64, style_size=128, batch_size=2, num_steps=80, learning_rate=5e-3, checkpoint_every=1000,
        summary_every=40, print_every=1, width_multiplier=0.25, extractor=extractor_config,
        loss_weights=losses.LossWeights(content=1.0, style=5.0, tv=0.0))
    recorder = train.History()
    result = train.train(config, recorder)

    totals = [recorder.history[step]["total"] for step in sorted(recorder.history)]
    assert len(totals) == 80 and result.model_path == os.path.join(config.train_dir, train.MODEL_FILE)
    final = np.mean(totals[-5:])
    print(f"total loss: first step {totals[0]:.4g}, mean of the last 5 steps {final:.4g} "
          f"(a drop of {100 * (1 - final / totals[0]):.1f}%)")
    assert final <= 0.5 * totals[0]

    model = keras.models.load_model(result.model_path)
    extractor = vgg.build_extractor(extractor_config)
    style = image_io.resize_max_side(image_io.read_image(config.style_image), config.style_size)
    style_grams = losses.style_targets(extractor(style[None]), extractor_config.style_layers)
    images = train_data.find_images(dataset_dir).images
    content = tf.stack([train_data.load_crop(path, 64, random=False) for path in images])
    content_distance = _relative_gram_distance(extractor, content, style_grams)
    stylized_distance = _relative_gram_distance(extractor, model(content), style_grams)
    print(f"relative Gram distance to the style: content {content_distance:.4g}, "
          f"stylised {stylized_distance:.4g}")
    assert stylized_distance < 0.5 * content_distance


def _start_cli(*args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def _read_until(process, predicate, timeout=180):
    """Reads output lines until predicate(line) holds; returns them all. Kills the process on timeout."""
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if predicate(line):
                return lines
    finally:
        watchdog.cancel()
    raise AssertionError(f"the output never matched; it was:\n{''.join(lines)}")


def _printed_step(line):
    return int(line.split()[1].split("/")[0]) if line.startswith("step ") else None


def _checkpoint_step(train_dir):
    checkpoint = tf.train.latest_checkpoint(train_dir)
    return int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def test_resumes_after_a_kill_and_saves_on_sigterm(tmp_path, dataset_dir, image_files):
    train_dir = str(tmp_path / "run")
    args = ["train", f"--dataset_dir={dataset_dir}", f"--train_dir={train_dir}",
            f"--style={image_files['style']}", "--num_train_steps=1000", "--checkpoint_every=3",
            "--print_every=1", *TINY_CLI_FLAGS]

    first = _start_cli(*args)
    _read_until(first, lambda line: (_printed_step(line) or 0) > 3)  # step 3's checkpoint is written
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _checkpoint_step(train_dir)
    assert killed_at >= 3 and killed_at % 3 == 0

    second = _start_cli(*args)
    lines = _read_until(second, lambda line: (_printed_step(line) or 0) > killed_at + 1)
    second.send_signal(signal.SIGTERM)
    output = "".join(lines) + second.communicate(timeout=120)[0]
    assert f"resuming at step {killed_at} of 1000" in output
    # --precision=auto, the default, is float32 for training, even on a CPU with native bfloat16.
    assert re.search(r"replica\(s\) on [^,]+, float32$", output, re.MULTILINE), output
    steps = [_printed_step(line) for line in output.splitlines() if _printed_step(line)]
    assert steps[0] == killed_at + 1 and steps == list(range(killed_at + 1, steps[-1] + 1))
    # SIGTERM: the step in progress finishes, is checkpointed, and the run exits cleanly.
    assert second.returncode == 128 + signal.SIGTERM, output
    assert f"stopped by signal {int(signal.SIGTERM)} at step {steps[-1]}" in output
    assert _checkpoint_step(train_dir) == steps[-1]
    assert "Traceback" not in output and not os.path.exists(os.path.join(train_dir, train.MODEL_FILE))


_MIRRORED_SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    import keras
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tf_nst import train, vgg

    config = train.TrainConfig(
        dataset_dir="unused", train_dir=sys.argv[2], style_image="unused", image_size=32, batch_size=4,
        width_multiplier=0.25, extractor=vgg.ExtractorConfig(backbone="vgg16", weights=sys.argv[1]))
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    style = rng.uniform(0, 255, (48, 40, 3)).astype(np.float32)
    batch = tf.constant(rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32))
    report, initial = {}, None
    for name in ("default", "mirrored"):
        strategy = train.make_strategy(name)
        trainer = train.Trainer(dataclasses.replace(config, strategy=name), strategy, style)
        if initial is None:
            initial = trainer.model.get_weights()
        else:
            trainer.model.set_weights(initial)
        terms = trainer.train_step(next(iter(trainer.distribute(tf.data.Dataset.from_tensors(batch)))))
        report[name] = {"replicas": strategy.num_replicas_in_sync,
                        "terms": {key: float(value) for key, value in terms.items()},
                        "kernel_momentums": {v.name: v.numpy().tolist() for v in trainer.optimizer.variables
                                             if v.name.endswith("kernel_momentum")}}

    # Mixed float16: an overflow on one replica must make every replica skip the step.
    def gradient(context):
        return tf.constant([1.0, np.inf if context.replica_id_in_sync_group == 1 else 2.0])
    for name, make in (("one_overflows", gradient), ("none_overflows", lambda context: tf.ones([2]))):
        values = strategy.experimental_distribute_values_from_function(make)
        agree = tf.function(lambda v: strategy.run(lambda g: train._agree_on_overflow([g])[0], args=(v,)))
        agreed = agree(values)
        report[name] = [np.isfinite(v.numpy()).tolist() for v in strategy.experimental_local_results(agreed)]
    print(json.dumps(report))
""")


def test_mirrored_over_two_devices_matches_one_device(tmp_path, vgg16_weights):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, vgg16_weights, str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    single, mirrored = report["default"], report["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert min(single["terms"].values()) > 0  # every term takes part (the shared defaults weigh TV too)
    for name in ("total", "content", "style", "tv"):
        # float32 rounding of a sum split over two replicas: measured 2e-7 relative; 1e-5 leaves a 50x margin
        assert mirrored["terms"][name] == pytest.approx(single["terms"][name], rel=1e-5, abs=1e-7), name
    # The gradients too: after one step Adam's first moment is (1 - beta_1) * gradient, linear in it, so it
    # shows whether the replicas' gradients were summed at the right scale. (Biases are left out: instance
    # normalisation removes them, so their gradients are rounding noise.)
    assert report["one_overflows"] == [[False, False], [False, False]]
    assert report["none_overflows"] == [[True, True], [True, True]]
    expected_momentums = single["kernel_momentums"]
    assert len(expected_momentums) == 16 and mirrored["kernel_momentums"].keys() == expected_momentums.keys()
    for name, expected in expected_momentums.items():
        tolerance = 1e-3 * np.abs(expected).max()
        np.testing.assert_allclose(mirrored["kernel_momentums"][name], expected, rtol=1e-3, atol=tolerance,
                                   err_msg=name)


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory, image_files):
    """A short in-process run on a folder holding readable, corrupt and non-image files."""
    folder = tmp_path_factory.mktemp("messy")
    (folder / "nested").mkdir()
    _save_thumbnail(folder / "chelsea.jpg", "chelsea", 64)
    _save_thumbnail(folder / "nested" / "coffee.PNG", "coffee", 64)
    Image.fromarray(skimage_rgb("camera")[::8, ::8]).save(folder / "nested" / "gray.gif")
    (folder / "text.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    jpeg = (folder / "chelsea.jpg").read_bytes()
    (folder / "nested" / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (folder / "notes.txt").write_text("ignored: not an image extension")
    config = _tiny_config(str(folder), str(tmp_path_factory.mktemp("messy_run")), image_files["style"])
    recorder = train.History()
    return config, train.train(config, recorder), recorder


def test_unreadable_files_are_skipped_and_counted(messy_run):
    config, result, recorder = messy_run
    folder = config.dataset_dir
    assert sorted(os.path.relpath(path, folder) for path in result.skipped_files) == [
        "empty.png", os.path.join("nested", "truncated.jpg"), "text.jpg"]
    assert recorder.info.num_images == 3 and recorder.info.skipped_files == result.skipped_files
    assert result.step == 3 and sorted(recorder.history) == [1, 2, 3]
    assert all(np.isfinite(value) for value in result.terms.values())
    assert os.path.isfile(result.model_path)


def test_restore_brings_back_the_step_weights_and_optimizer_state(messy_run):
    config, result, _ = messy_run
    style = np.zeros((32, 32, 3), np.float32)
    trainer = train.Trainer(config, train.make_strategy("default"), style)
    assert trainer.restore() == 3 and tf.train.latest_checkpoint(config.train_dir).endswith("ckpt-3")
    assert int(trainer.optimizer.iterations.numpy()) == 3
    moments = [v for v in trainer.optimizer.variables if v.name.endswith(("_momentum", "_velocity"))]
    assert len(moments) == 2 * len(trainer.model.trainable_variables)
    assert all(np.any(moment.numpy() != 0) for moment in moments)
    saved = keras.models.load_model(result.model_path).get_weights()
    for got, expected in zip(trainer.model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_summaries_hold_every_loss_term_and_the_preview(messy_run):
    config, _, _ = messy_run
    tags = set()
    for name in os.listdir(config.train_dir):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(config.train_dir, name)):
                tags.update(value.tag for value in event.summary.value)
    assert {"loss/total", "loss/content", "loss/style", "loss/tv", "preview/stylized"} <= tags


def test_mixed_float16_trains_with_loss_scaling_and_exports_float32(tmp_path, dataset_dir, image_files):
    config = _tiny_config(dataset_dir, str(tmp_path / "run"), image_files["style"], precision="mixed_float16",
                          summary_every=0)
    result = train.train(config)
    assert result.step == 3 and all(np.isfinite(value) for value in result.terms.values())
    checkpoint = tf.train.latest_checkpoint(config.train_dir)
    assert "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE" in dict(tf.train.list_variables(checkpoint))
    model = keras.models.load_model(result.model_path)
    assert {layer.compute_dtype for layer in model.layers if layer.weights} == {"float32"}


def test_folder_without_images_is_a_one_line_error(tmp_path, image_files):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserInputError, match="no image files under"):
        train.train(_tiny_config(str(tmp_path / "empty"), str(tmp_path / "run"), image_files["style"]))
    with pytest.raises(UserInputError, match="dataset folder not found"):
        train.train(_tiny_config(str(tmp_path / "missing"), str(tmp_path / "run"), image_files["style"]))

    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "train", f"--dataset_dir={tmp_path / 'empty'}",
         f"--train_dir={tmp_path / 'run'}", *TINY_CLI_FLAGS], capture_output=True, text=True, timeout=300,
        cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tf-nst: error: no image files under {str(tmp_path / 'empty')!r}; expected files ending in "
        f"{', '.join(train.IMAGE_EXTENSIONS)}"]
    assert not os.path.exists(tmp_path / "run")


def test_resuming_with_another_width_is_a_one_line_error(tmp_path, dataset_dir, image_files):
    train_dir = str(tmp_path / "run")
    train.train(_tiny_config(dataset_dir, train_dir, image_files["style"], num_steps=1, summary_every=0))
    wider = _tiny_config(dataset_dir, train_dir, image_files["style"], num_steps=2, width_multiplier=0.5)
    with pytest.raises(UserInputError, match="cannot resume from .*another width, depth or precision") as raised:
        train.train(wider)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("overrides, message", [
    ({"strategy": "tpu"}, "unknown strategy 'tpu'"),
    ({"precision": "float8"}, "unknown precision 'float8'"),
    ({"image_size": 4}, "must be at least"),
    ({"batch_size": 0}, "batch_size must be at least 1; received 0"),
    ({"learning_rate": 0.0}, "learning rate must be greater than 0"),
])
def test_validate_config_refuses_bad_settings(tmp_path, image_files, overrides, message):
    config = _tiny_config(str(tmp_path), str(tmp_path / "run"), image_files["style"], **overrides)
    with pytest.raises(UserInputError, match=message):
        train.validate_config(config)


def test_validate_config_refuses_a_train_dir_that_is_a_file(tmp_path, image_files):
    (tmp_path / "run").write_text("a file")
    with pytest.raises(UserInputError, match="is a file; give a directory"):
        train.validate_config(_tiny_config(str(tmp_path), str(tmp_path / "run"), image_files["style"]))


def test_train_refuses_several_styles_in_one_line(tmp_path, dataset_dir, image_files):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "train", f"--dataset_dir={dataset_dir}",
         f"--train_dir={tmp_path / 'run'}", f"--style={image_files['style']},{image_files['coffee']}",
         *TINY_CLI_FLAGS], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "train learns one style: give one --style file" in result.stderr
    assert not os.path.exists(tmp_path / "run")


def _strategy_of(cluster, task_type, task_id):
    """A stand-in strategy with the cluster resolver that MultiWorkerMirroredStrategy reads from TF_CONFIG."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return type("Strategy", (), {"cluster_resolver": resolver})()


@pytest.mark.parametrize("cluster, task, chief", [
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("chief", 0), True),
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("worker", 0), False),
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),  # no chief: worker 0 leads
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
])
def test_one_worker_owns_the_train_dir_and_the_others_save_beside_it(tmp_path, cluster, task, chief):
    strategy = _strategy_of(cluster, *task)
    assert train.is_chief(strategy) == chief
    expected = str(tmp_path) if chief else os.path.join(str(tmp_path), "workers", f"{task[0]}-{task[1]}")
    assert train._checkpoint_dir(str(tmp_path), strategy) == expected  # pylint: disable=protected-access
    assert train.is_chief(tf.distribute.get_strategy())  # outside multi-worker training
