"""What training the one-style network (Johnson et al. 2016, §3) brings to the shared loop in train.py: the
network, its loss (style Gram matrices of one style image, content features, total variation), its data and
its preview.
"""

import dataclasses

import tensorflow as tf

from tf_nst import losses
from tf_nst import transformer
from tf_nst import vgg
from tf_nst.precision import dtype_policy
from tf_nst.train_data import centre_crops
from tf_nst.train_data import find_images
from tf_nst.train_data import load_style
from tf_nst.train_data import make_dataset


def min_image_size(config):
    """The smallest training crop and style size for the config's layers."""
    layers = config.extractor.style_layers + config.extractor.content_layers
    return max(transformer.MIN_INPUT_SIDE, vgg.min_input_size(layers))


class JohnsonRecipe:
    """The one-style network and its loss; `style` is the style image, float32 [H, W, 3] in [0, 255]."""

    def __init__(self, config, style):
        self.config = config
        self.style = style
        self.extractor = None
        self.style_grams = None

    @staticmethod
    def find_data(config):
        """(DatasetFiles of the training images, the style image [H, W, 3])."""
        return find_images(config.dataset_dir), load_style(config)

    def build(self, precision):
        """Builds the network and the loss network (inside the strategy's scope); returns the network.

        The network first: its initial weights are the first draws after the run's seed, as they always were.
        """
        network = self.build_network(precision)
        self.extractor = vgg.build_extractor(dataclasses.replace(self.config.extractor, precision=precision))
        return network

    def build_network(self, precision):
        with dtype_policy(precision):
            return transformer.build_transformer(self.config.width_multiplier, self.config.num_residual_blocks)

    def prepare(self, model):  # pylint: disable=unused-argument
        """Computes the style targets once, after the networks exist."""
        style_features = self.extractor(tf.convert_to_tensor(self.style, tf.float32)[None])
        self.style_grams = losses.style_targets(style_features, self.config.extractor.style_layers)

    @staticmethod
    def batch_size(batch):
        return tf.shape(batch)[0]

    def losses(self, model, content):
        """(total, {term: value}) of one replica's batch of content crops."""
        stylized = model(content, training=True)
        features = self.extractor(tf.concat([stylized, content], axis=0))
        size = tf.shape(content)[0]
        stylized_features = {name: value[:size] for name, value in features.items()}
        content_features = {name: tf.stop_gradient(features[name][size:])
                            for name in self.config.extractor.content_layers}
        return losses.combined_loss(stylized, stylized_features, self.style_grams, content_features,
                                    self.config.loss_weights or losses.LossWeights())

    def dataset(self, files, seed):
        config = self.config
        return make_dataset(files.images, config.image_size, config.batch_size, seed=seed, resize=config.resize)

    def preview_inputs(self, files, count):
        """The fixed images that the preview stylises: the first training images, centre-cropped."""
        return centre_crops(files.images[:count], self.config.image_size, self.config.resize)

    @staticmethod
    def preview(model, inputs):
        """The stylised preview images, [count, H, W, 3] in [0, 255]."""
        return model(inputs)

    def export_model(self, model):
        """A float32 copy of the trained network, for saving."""
        exported = self.build_network("float32")
        exported.set_weights(model.get_weights())
        return exported
