"""Style augmentation (Jackson et al. 2019): RandomStyle, a Keras layer that restyles each image of a batch with
a random style from a bank, through an arbitrary-style network (tf_nst.adain)."""

import functools
import os

import keras
import numpy as np
import tensorflow as tf

from tf_nst import adain
from tf_nst import api
from tf_nst import image_io
from tf_nst import stylize


class RandomStyle(keras.layers.Layer):
    """Restyles each image with a style drawn from a bank, at an alpha drawn uniformly in `alpha_range`.

    Jackson et al. 2019 ("Style augmentation: data augmentation via style randomization") draw a style
    embedding from a distribution fitted to paintings; here it is drawn uniformly from the style_statistics of
    the given `styles`, computed once at construction. alpha is AdaIN's content-style trade-off in feature
    space (Huang & Belongie 2017, §7.2): a small alpha gives the decoder's reconstruction of the image, close
    to it but not equal; alpha_range=(0, 0) makes the layer the identity (the network does not run).

    Input: [N, H, W, 3] or [H, W, 3], uint8 or float RGB in [0, 255], H and W at least adain.MIN_INPUT_SIDE.
    Output: the same shape and dtype, in [0, 255] (uint8 rounded); identity when `training=False` (as in
    `model.predict` or `evaluate`). Called without `training`, as in `dataset.map(layer)`, it restyles.

    With a seed, the draws are a fixed sequence (keras.random.SeedGenerator): the same seed and the same calls
    give the same outputs; in tf.data, with the default sequential `map`.

    The layer has no weights: the network's are not tracked, so that a model that contains the layer does
    not train the stylizer. It cannot be saved in a `.keras` file (get_config raises): save the model that
    the layer feeds, not the layer.

    Args:
      model: an arbitrary-style network (adain.build_model), or the path of its `.keras` file or train_dir.
      styles: a style, or a list of them: file paths, PIL images or [H, W, 3] arrays in [0, 255].
      alpha_range: (low, high) with 0 <= low <= high <= 1.
      seed: an int, or None for a random sequence.
      style_size: each style's shorter side before its statistics are taken (as `stylize --style_size`).
    """

    def __init__(self, model, styles, alpha_range=(0.0, 1.0), seed=None,
                 style_size=stylize.DEFAULT_STYLE_SIZE, **kwargs):
        super().__init__(autocast=False, **kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = stylize.load_stylizer(os.fspath(model))
        if not adain.is_arbitrary(model):
            raise ValueError(f"RandomStyle needs an arbitrary-style network (adain.build_model); received "
                             f"{getattr(model, 'name', model)!r}, which learnt one style")
        low, high = (float(value) for value in alpha_range)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"alpha_range must be (low, high) with 0 <= low <= high <= 1; received {alpha_range!r}")
        self.alpha_range = (low, high)
        self.seed = seed
        self.style_size = style_size
        self.seed_generator = keras.random.SeedGenerator(seed)
        # A partial, not the model itself: Keras would track the network's weights as this layer's, and training
        # a model that contains the layer would train the decoder too.
        self._stylize = functools.partial(adain.stylize_with_statistics, model)
        self.bank = np.concatenate([adain.style_statistics(model, image[np.newaxis]).numpy()
                                    for image in api.read_style_images(styles, style_size)])

    def sample(self, batch_size):
        """The next draws: (style indices int32 [batch_size] into `bank`, alphas float32 [batch_size])."""
        indices = keras.random.randint((batch_size,), 0, len(self.bank), dtype="int32", seed=self.seed_generator)
        alphas = keras.random.uniform((batch_size,), *self.alpha_range, seed=self.seed_generator)
        return indices, alphas

    def call(self, images, training=True):
        if not training or self.alpha_range[1] == 0.0:
            return images
        batch = images[tf.newaxis] if images.shape.rank == 3 else images
        indices, alphas = self.sample(tf.shape(batch)[0])
        statistics = tf.gather(tf.constant(self.bank), indices)
        styled = self._stylize(tf.cast(batch, tf.float32), [statistics], alpha=alphas)
        styled = image_io.to_uint8(styled) if images.dtype == tf.uint8 else tf.cast(styled, images.dtype)
        return styled[0] if images.shape.rank == 3 else styled

    def compute_output_spec(self, images, training=True):
        return keras.KerasTensor(images.shape, images.dtype)

    def get_config(self):
        raise NotImplementedError(
            "RandomStyle holds a stylizer network and a style bank, which a Keras config cannot hold; save the "
            "model without it (the layers after it), and build RandomStyle again to train")
