"""What training the arbitrary-style network (Huang & Belongie 2017, §6) brings to the shared loop in
train.py: the decoder to train, its loss (relu4_1 content, mean and std style), random content x style pairs
of crops, and a content x style preview grid.
"""

import dataclasses

import tensorflow as tf

from tf_nst import adain
from tf_nst import losses
from tf_nst.precision import dtype_policy
from tf_nst.train_data import centre_crops
from tf_nst.train_data import DatasetFiles
from tf_nst.train_data import find_images
from tf_nst.train_data import make_pair_dataset


@dataclasses.dataclass(frozen=True)
class PairFiles:
    """The content and style training images; `images` and `skipped` as train_data.DatasetFiles has them."""

    content: DatasetFiles
    style: DatasetFiles

    @property
    def images(self):
        return self.content.images

    @property
    def skipped(self):
        return self.content.skipped + self.style.skipped


class AdainRecipe:
    """The arbitrary-style network: the frozen encoder, AdaIN, and the decoder, which alone is trained."""

    def __init__(self, config, style=None):  # pylint: disable=unused-argument
        self.config = config
        self.encoder = None
        self.weights = config.loss_weights or adain.loss_weights()

    @staticmethod
    def find_data(config):
        """(PairFiles, None): the arbitrary network has no fixed style."""
        return PairFiles(find_images(config.dataset_dir),
                         find_images(config.style_dir, kind="style", contents="style images")), None

    def build(self, precision):
        """Builds the encoder and the decoder (inside the strategy's scope); returns the decoder."""
        model = self.build_network(precision)
        self.encoder = model.get_layer("encoder")
        return model.get_layer("decoder")

    def build_network(self, precision):
        with dtype_policy(precision):
            extractor = dataclasses.replace(self.config.extractor, precision=precision)
            return adain.build_model(extractor, self.config.width_multiplier)

    def prepare(self, model):
        """Nothing to precompute: every batch brings its styles."""

    @staticmethod
    def batch_size(batch):
        return tf.shape(batch[0])[0]

    def losses(self, decoder, batch):
        """(total, {term: value}) of one replica's (content, style) crops, whose sides are multiples of 8.

        The decoder inverts t = AdaIN(f(c), f(s)): f(g(t)) should be t (content) and carry the style's channel
        means and stds at relu1_1 to relu4_1 (style). Each content crop has its own style crop.
        """
        content, style = batch
        size = tf.shape(content)[0]
        features = self.encoder(tf.concat([content, style], axis=0))
        style_targets = losses.moment_targets({name: value[size:] for name, value in features.items()},
                                              adain.STYLE_LAYERS)
        target = adain.target_features(features[adain.ENCODER_LAYER][:size],
                                       [features[adain.ENCODER_LAYER][size:]])
        decoded = decoder(target, training=True)
        return losses.combined_loss(decoded, self.encoder(decoded), style_targets,
                                    {adain.ENCODER_LAYER: target}, self.weights)

    def dataset(self, files, seed):
        config = self.config
        return make_pair_dataset(files.content.images, files.style.images, config.image_size, config.batch_size,
                                 seed=seed, resize=config.resize)

    def preview_inputs(self, files, count):
        """The first `count` content and style images, centre-cropped: the rows and columns of the grid."""
        return tuple(centre_crops(paths[:count], self.config.image_size, self.config.resize)
                     for paths in (files.content.images, files.style.images))

    def preview(self, decoder, inputs):
        """One grid image [1, (S + 1) H, (C + 1) W, 3]: the contents along the top, the styles down the left,
        each content stylised with each style in between."""
        contents, styles = inputs
        content_features = self.encoder(contents)[adain.ENCODER_LAYER]
        style_features = self.encoder(styles)[adain.ENCODER_LAYER]
        rows = [tf.concat([tf.zeros_like(contents[:1]), contents], axis=0)]
        for index in range(styles.shape[0]):
            target = adain.target_features(content_features, [style_features[index:index + 1]])
            stylized = tf.clip_by_value(tf.cast(decoder(target), tf.float32), 0.0, 255.0)
            rows.append(tf.concat([styles[index:index + 1], stylized], axis=0))
        return tf.concat([tf.concat(tf.unstack(row), axis=1) for row in rows], axis=0)[None]

    def export_model(self, decoder):
        """The whole float32 network (encoder, AdaIN, trained decoder), for saving as one file."""
        model = self.build_network("float32")
        model.get_layer("decoder").set_weights(decoder.get_weights())
        return model
