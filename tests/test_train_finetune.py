"""train --init_from=magenta-arbitrary: a one-style network started from the pretrained network's transformer."""

import os

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data

from tf_nst import defaults
from tf_nst import files
from tf_nst import image_io
from tf_nst import magenta
from tf_nst import pretrained
from tf_nst import stylize
from tf_nst import train
from tf_nst import train_finetune
from tf_nst import vgg


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    for name in ("astronaut", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()[::4, ::4]).save(folder / f"{name}.png")
    style = folder / "style.png"
    Image.fromarray(data.hubble_deep_field()[:256, :256]).save(style)
    (folder / "style.png").rename(folder.parent / f"{folder.name}_style.png")
    return folder, str(folder.parent / f"{folder.name}_style.png")


def _config(photos, train_dir, finetune, num_steps=2, vgg19_q8_weights="none"):  # noqa: D103
    folder, style = photos
    return train.TrainConfig(dataset_dir=str(folder), train_dir=str(train_dir), style_image=style,
                             architecture="finetune", finetune=finetune, image_size=48, style_size=64,
                             batch_size=2, num_steps=num_steps, checkpoint_every=1, summary_every=0, print_every=1,
                             extractor=vgg.ExtractorConfig(weights=vgg19_q8_weights), learning_rate=1e-2)


def test_before_training_it_is_the_pretrained_network_with_the_styles_embedding(photos, tmp_path):
    recipe = train_finetune.FinetuneRecipe(_config(photos, tmp_path, "norms"),
                                           image_io.read_image(photos[1]).astype(np.float32))
    model = recipe.build_network("float32")
    source = pretrained.load(pretrained.ARBITRARY)
    style = image_io.to_float(image_io.to_uint8(image_io.resize_shorter_side(
        image_io.read_image(photos[1]).astype(np.float32), defaults.PRETRAINED_STYLE_SIZE)))
    content = data.chelsea()[:64, :96].astype(np.float32)[None]
    expected = magenta.stylize(source, content, [style[None]]).numpy()
    np.testing.assert_allclose(model(content).numpy(), expected, atol=1e-3)


@pytest.mark.parametrize("finetune", ["embedding", "norms"])
def test_the_fine_tune_changes_only_what_it_says_it_trains(photos, tmp_path, finetune, vgg19_q8_weights):
    recipe = train_finetune.FinetuneRecipe(_config(photos, tmp_path, finetune), None)
    recipe.style = image_io.read_image(photos[1]).astype(np.float32)
    before = {w.path: w.numpy().copy() for w in recipe.build_network("float32").weights}
    result = train.train(_config(photos, tmp_path / "run", finetune, vgg19_q8_weights=vgg19_q8_weights))
    after = {w.path: w.numpy() for w in keras.models.load_model(result.model_path, compile=False).weights}
    assert set(after) == set(before)
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    embedding = {path for path in before if "style_condition" in path}
    projections = {path for path in before if path.endswith(("_gamma/kernel", "_gamma/bias", "_beta/kernel",
                                                              "_beta/bias"))}
    assert embedding and projections and embedding <= changed
    if finetune == "embedding":
        assert changed == embedding
    else:
        assert changed <= embedding | projections and changed & projections


def test_the_result_is_a_one_style_network_and_a_rerun_resumes(photos, tmp_path, vgg19_q8_weights):
    config = _config(photos, tmp_path / "run", "embedding", vgg19_q8_weights=vgg19_q8_weights)
    first = train.train(config)
    embedding = keras.models.load_model(first.model_path, compile=False).get_layer("style_condition").get_weights()
    history = train.History()
    again = train.train(_config(photos, tmp_path / "run", "embedding", num_steps=3, vgg19_q8_weights=vgg19_q8_weights),
                        history)
    assert history.info.start_step == 2 and again.step == 3
    resumed = keras.models.load_model(again.model_path, compile=False).get_layer("style_condition").get_weights()
    assert not np.array_equal(embedding[0], resumed[0])  # step 3 trained on
    assert not files.is_arbitrary_model(again.model_path)
    model = stylize.load_stylizer(os.path.dirname(again.model_path))
    image = data.chelsea()[:40, :56]
    out = stylize.stylize_image(model, image)
    assert out.shape == image.shape and out.dtype == np.uint8
