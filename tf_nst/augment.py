"""Style augmentation (Jackson et al. 2019): RandomStyle, a Keras layer that restyles each image of a batch with
a random style from a bank, through an arbitrary-style network: the pretrained one (magenta-arbitrary, the
network Jackson et al. 2019 used) or an AdaIN network trained here."""

import functools
import os

import keras
import numpy as np
import tensorflow as tf

from tf_nst import api
from tf_nst import arbitrary
from tf_nst import image_io
from tf_nst import stylize


@keras.saving.register_keras_serializable(package="tf_nst")
class RandomStyle(keras.layers.Layer):
    """Restyles each image with a style drawn from a bank, at an alpha drawn uniformly in `alpha_range`.

    Jackson et al. 2019 ("Style augmentation: data augmentation via style randomization") draw a style
    embedding of Ghiasi et al.'s network (magenta-arbitrary) from a distribution fitted to paintings; here it is
    drawn uniformly from the embeddings of the given `styles`, computed once at construction. alpha is the
    content-style trade-off: between the content's own embedding and the style's (magenta-arbitrary), or in
    AdaIN's feature space (Huang & Belongie 2017, §7.2); a small alpha gives the network's reconstruction of the
    image, close to it but not equal; alpha_range=(0, 0) makes the layer the identity (the network does not run).

    Input: [N, H, W, 3] or [H, W, 3], uint8 or float RGB in [0, 255], H and W at least 16.
    Output: the same shape and dtype, in [0, 255] (uint8 rounded); identity when `training=False` (as in
    `model.predict` or `evaluate`). Called without `training`, as in `dataset.map(layer)`, it restyles.

    With a seed, the draws are a fixed sequence (keras.random.SeedGenerator): the same seed and the same calls
    give the same outputs; in tf.data, with the default sequential `map`.

    Weights and saving: the bank is the layer's one weight (non-trainable). The network is not tracked, so a
    model that contains the layer never trains the stylizer (its weights are in none of the model's weight
    lists), but it is saved with the layer: a model that contains RandomStyle saves to a `.keras` file and
    loads back with keras.models.load_model (the network's config in the layer's, its weights beside the
    bank's). A loaded layer starts its seed's sequence afresh, as a new one would.

    Args:
      model: an arbitrary-style network: "magenta-arbitrary" (pretrained), or an adain.build_model network, or
        the path of its `.keras` file or train_dir.
      styles: a style, or a list of them: file paths, PIL images or [H, W, 3] arrays in [0, 255].
      alpha_range: (low, high) with 0 <= low <= high <= 1.
      seed: an int, or None for a random sequence.
      style_size: each style's shorter side before its embedding is taken (as `stylize --style_size`; default
        256 for magenta-arbitrary, 512 for AdaIN).
      statistics: instead of `styles`, the bank itself: [num_styles, arbitrary.embedding_size(model)] style
        embeddings (as arbitrary.style_embedding, another layer's `bank`, or the exported model's
        style_embedding give them).
    """

    def __init__(self, model, styles=None, alpha_range=(0.0, 1.0), seed=None,
                 style_size=None, statistics=None, **kwargs):
        super().__init__(autocast=False, **kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = stylize.load_stylizer(os.fspath(model))
        if not arbitrary.is_arbitrary(model):
            raise ValueError(f"RandomStyle needs an arbitrary-style network (magenta-arbitrary, or "
                             f"adain.build_model); received "
                             f"{getattr(model, 'name', model)!r}, which learnt one style")
        low, high = (float(value) for value in alpha_range)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"alpha_range must be (low, high) with 0 <= low <= high <= 1; received {alpha_range!r}")
        self.alpha_range = (low, high)
        self.seed = seed
        self.style_size = style_size = style_size or arbitrary.default_style_size(model)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Not an attribute: Keras would track the network's weights as this layer's, and training a model that
        # contains the layer would train the decoder too; and Keras's saving, which walks a layer's attributes
        # (properties included), would save its weights a second time. save_own_variables saves them.
        self._stylize = functools.partial(arbitrary.stylize_with_embeddings, model)
        bank = _bank(model, styles, style_size, statistics)
        self._bank = self.add_weight(name="bank", shape=bank.shape, dtype="float32", initializer="zeros",
                                     trainable=False)
        self._bank.assign(bank)

    def get_network(self):
        """The arbitrary-style network that restyles (a method, not an attribute: see __init__)."""
        return self._stylize.args[0]

    @property
    def bank(self):
        """The style bank: float32 [num_styles, embedding size] style embeddings, as a NumPy array."""
        return keras.ops.convert_to_numpy(self._bank)

    def sample(self, batch_size):
        """The next draws: (style indices int32 [batch_size] into `bank`, alphas float32 [batch_size])."""
        indices = keras.random.randint((batch_size,), 0, self._bank.shape[0], dtype="int32",
                                       seed=self.seed_generator)
        alphas = keras.random.uniform((batch_size,), *self.alpha_range, seed=self.seed_generator)
        return indices, alphas

    def call(self, images, training=True):
        if not training or self.alpha_range[1] == 0.0:
            return images
        batch = images[tf.newaxis] if images.shape.rank == 3 else images
        indices, alphas = self.sample(tf.shape(batch)[0])
        statistics = tf.gather(tf.convert_to_tensor(self._bank), indices)
        styled = self._stylize(tf.cast(batch, tf.float32), [statistics], alpha=alphas)
        styled = image_io.to_uint8(styled) if images.dtype == tf.uint8 else tf.cast(styled, images.dtype)
        return styled[0] if images.shape.rank == 3 else styled

    def compute_output_spec(self, images, training=True):
        return keras.KerasTensor(images.shape, images.dtype)

    def get_config(self):
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.get_network()),
                "alpha_range": list(self.alpha_range), "seed": self.seed, "style_size": self.style_size,
                "num_styles": int(self._bank.shape[0])}

    @classmethod
    def from_config(cls, config):
        """The layer with its network's architecture and an empty bank: load_own_variables fills both."""
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"))
        statistics = np.zeros((config.pop("num_styles"), arbitrary.embedding_size(model)), np.float32)
        return cls(model, statistics=statistics, **config)

    def save_own_variables(self, store):
        """The bank, and the network's weights (in its `weights` order, which its config fixes)."""
        store["bank"] = self._bank
        for index, weight in enumerate(self.get_network().weights):
            store[f"network_{index}"] = weight

    def load_own_variables(self, store):
        network = self.get_network()
        self._bank.assign(store["bank"])
        network.set_weights([store[f"network_{index}"] for index in range(len(network.weights))])


def _bank(model, styles, style_size, statistics):
    """The style bank of RandomStyle: its `statistics` checked, or the `styles`' computed; float32 [N, S]."""
    if (styles is None) == (statistics is None):
        raise ValueError("give RandomStyle either styles or statistics (the style bank), not both or neither")
    if statistics is None:
        return np.concatenate([arbitrary.style_embedding(model, image[np.newaxis]).numpy()
                               for image in api.read_style_images(styles, style_size)])
    statistics = np.asarray(statistics, np.float32)
    size = arbitrary.embedding_size(model)
    if statistics.ndim != 2 or statistics.shape[1] != size or not len(statistics):
        raise ValueError(f"statistics must be [num_styles, {size}] style embeddings; received shape "
                         f"{statistics.shape}")
    return statistics
