"""The arbitrary-style decoder on real features: does a briefly trained decoder invert the encoder?

Trains the adain network (train.train, --architecture=adain) for --steps steps on scikit-image photos, with
scikit-image images as styles, and a real VGG19 encoder (--weights, default the 8-bit ImageNet copy). Then it
reconstructs held-out photos at alpha = 0 (the decoder fed the photo's own relu4_1 features) and prints
the PSNR against the photo, beside an untrained decoder of the same initial weights, and the
relu4_1 content distance ||f(g(f(c))) - f(c)||^2 / ||f(c)||^2.

Training photos: astronaut, coffee, rocket, retina and the left motorcycle view; styles: immunohistochemistry,
hubble_deep_field, colorwheel; held out: chelsea, camera (gray, as RGB), coins (gray).

  python bench/bench_adain_reconstruction.py                 # 300 steps of batch 4 at 64 px: ~5 min, 2 cores
  python bench/bench_adain_reconstruction.py --steps=1000 --image_size=128 --width=1
"""

import os
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst

import machine  # beside this script

_STEPS = flags.DEFINE_integer("steps", 300, "Training steps.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Training crop side (pixels, a multiple of 8).")
_RESIZE = flags.DEFINE_integer("resize", 96, "Shorter side of every training image before its crop.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Training batch size.")
_WIDTH = flags.DEFINE_float("width", 0.5, "The decoder's width multiplier.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
_STYLE_WEIGHT = flags.DEFINE_float("style_weight", None, "The style term's weight (default: adain.loss_weights()).")
_EVAL_SIZE = flags.DEFINE_integer("eval_size", 128, "Longer side of the held-out photos (pixels).")
_WEIGHTS = flags.DEFINE_string("weights", "imagenet_q8", "VGG19 weights: imagenet_q8, imagenet or a file.")

_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "retina", "motorcycle")
_STYLES = ("immunohistochemistry", "hubble_deep_field", "colorwheel")
_HELD_OUT = ("chelsea", "camera", "coins")


def _photo(name):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel

    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    image = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    return image.astype(np.uint8)


def _write(folder, names):
    from PIL import Image  # pylint: disable=import-outside-toplevel

    os.makedirs(folder, exist_ok=True)
    for name in names:
        Image.fromarray(_photo(name)).save(os.path.join(folder, f"{name}.png"))


def _psnr(image, reference):
    import numpy as np  # pylint: disable=import-outside-toplevel

    error = np.mean((np.round(np.asarray(image, np.float64)) - np.asarray(reference, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(error, 1e-10)))


def _scores(model, photos):
    """Mean PSNR (dB) of the alpha = 0 reconstructions and mean relu4_1 content distance."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import adain, losses  # pylint: disable=import-outside-toplevel

    psnrs, distances = [], []
    for photo in photos:
        output = adain.stylize(model, photo, [photo], alpha=0.0)
        encoder = model.get_layer("encoder")
        distances.append(float(losses.content_layer_loss(encoder(output)[adain.ENCODER_LAYER],
                                                         encoder(photo)[adain.ENCODER_LAYER])))
        psnrs.append(_psnr(output[0], photo[0]))
    return float(np.mean(psnrs)), float(np.mean(distances))


class _Timer:
    def __init__(self):
        self.start, self.last = None, None

    def on_train_begin(self, info):
        del info

    def on_progress(self, step, terms):
        if step == 1:
            self.start = time.perf_counter()
        self.last = (step, terms)


def main(argv):
    del argv
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as main.py does
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import adain, image_io, train, vgg  # pylint: disable=import-outside-toplevel

    logging.set_verbosity(logging.WARNING)
    work = tempfile.mkdtemp()
    _write(os.path.join(work, "photos"), _TRAIN_PHOTOS)
    _write(os.path.join(work, "styles"), _STYLES)
    extractor = vgg.ExtractorConfig(backbone="vgg19", weights=_WEIGHTS.value)
    config = train.TrainConfig(
        dataset_dir=os.path.join(work, "photos"), style_dir=os.path.join(work, "styles"),
        train_dir=os.path.join(work, "run"), architecture="adain", image_size=_IMAGE_SIZE.value,
        resize=_RESIZE.value, batch_size=_BATCH_SIZE.value, num_steps=_STEPS.value, checkpoint_every=_STEPS.value,
        summary_every=0, print_every=1, learning_rate=_LEARNING_RATE.value, width_multiplier=_WIDTH.value,
        extractor=extractor,
        loss_weights=None if _STYLE_WEIGHT.value is None else adain.loss_weights(style=_STYLE_WEIGHT.value))
    photos = [image_io.resize_max_side(tf.constant(_photo(name), tf.float32), _EVAL_SIZE.value)[None]
              for name in _HELD_OUT]

    print(f"machine: {machine.describe()}; vgg19 ({_WEIGHTS.value}) encoder, "
          f"decoder width {_WIDTH.value:g}, style weight {config.loss_weights.style if config.loss_weights else 'default'}, "
          f"learning rate {_LEARNING_RATE.value:g}, {_STEPS.value} steps of batch {_BATCH_SIZE.value} at "
          f"{_IMAGE_SIZE.value} px (resized to {_RESIZE.value}); held out {', '.join(_HELD_OUT)} at "
          f"{_EVAL_SIZE.value} px, alpha = 0", flush=True)
    keras.utils.set_random_seed(config.seed)  # as train.train seeds it: the untrained decoder is its start
    untrained = adain.build_model(extractor, _WIDTH.value)
    timer = _Timer()
    result = train.train(config, timer)
    trained = keras.models.load_model(result.model_path)
    step, terms = timer.last
    ms_per_step = 1000 * (time.perf_counter() - timer.start) / max(1, step - 1)
    print(f"training: {ms_per_step:.0f} ms/step after the first; last step's loss "
          + "  ".join(f"{name} {value:.3g}" for name, value in terms.items()))
    print("| decoder | PSNR at alpha = 0 (dB) | relu4_1 content distance |")
    print("| --- | --- | --- |")
    for name, model in (("untrained", untrained), (f"trained {step} steps", trained)):
        psnr, distance = _scores(model, photos)
        print(f"| {name} | {psnr:.2f} | {distance:.3f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
