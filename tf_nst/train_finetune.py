"""A one-style network started from the pretrained arbitrary network (Ghiasi et al. 2017): its transformer,
conditioned on the new style's embedding, fine-tuned with train_johnson's Gram-matrix losses in the shared loop.

Dumoulin et al. 2017 (§4) showed that a network that already paints learns a new style in its normalisation
parameters alone; here the embedding (100 numbers), the 26 gamma/beta projections, or the whole transformer can
be trained (TrainConfig.finetune). The result takes images alone, as any one-style network, so stylize, export,
batch, LiteRT and the Keras API handle it unchanged.
"""

import keras
import numpy as np
import tensorflow as tf

from tf_nst import defaults
from tf_nst import image_io
from tf_nst import magenta
from tf_nst import optimize
from tf_nst import pretrained
from tf_nst import train_johnson
from tf_nst.precision import dtype_policy

# What TrainConfig.finetune trains: the style's embedding; it and the norms' gamma/beta projections; everything.
FINETUNE_MODES = ("embedding", "norms", "all")


def loss_weights(style_layers, content=None, style=None, tv=None, layer_weights=None):
    """The fine-tune's losses.LossWeights on `style_layers`, the one place its defaults apply: each of content,
    style and tv is the given weight, else defaults.CONTENT_WEIGHT, FINETUNE_STYLE_WEIGHT and FINETUNE_TV_WEIGHT;
    the style layers weigh as in per-image transfer (optimize.transfer_loss_weights: `layer_weights` if given,
    else on the default layers the tuned ones, block5_conv1 out)."""
    return optimize.transfer_loss_weights(
        style_layers, content=content, style=defaults.FINETUNE_STYLE_WEIGHT if style is None else style,
        tv=defaults.FINETUNE_TV_WEIGHT if tv is None else tv, layer_weights=layer_weights)


@keras.saving.register_keras_serializable(package="tf_nst")
class StyleCondition(keras.layers.Layer):
    """images [N, H, W, 3] -> the layer's one weight, a [size] vector, repeated for each image: the fixed (and
    trainable) embedding of the style a fine-tuned network paints."""

    def __init__(self, size=magenta.EMBEDDING_SIZE, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.size = int(size)

    def build(self, input_shape):
        self.embedding = self.add_weight(shape=(self.size,), initializer="zeros", name="embedding")

    def call(self, images):
        return tf.tile(tf.cast(self.embedding, tf.float32)[tf.newaxis], [tf.shape(images)[0], 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def build_one_style(name="finetuned_stylizer"):
    """The pretrained arbitrary network's transformer behind a StyleCondition: RGB [N, H, W, 3] in [0, 255] ->
    float32 [N, H, W, 3] (random weights; finetuned_network sets them)."""
    images = keras.Input(shape=(None, None, 3), name="rgb")
    network = magenta.build_transformer(magenta.ARBITRARY_SPEC)
    outputs = network({"content": images, "condition": StyleCondition(name="style_condition")(images)})
    return keras.Model(images, outputs, name=name)


def set_trainable(model, finetune):
    """Freezes what `finetune` ("embedding", "norms" or "all") does not train."""
    network = model.get_layer("transformer")
    for layer in network.layers:
        norm_projection = isinstance(layer, keras.layers.Dense)
        layer.trainable = finetune == "all" or (finetune == "norms" and norm_projection)
    model.get_layer("style_condition").trainable = True


class FinetuneRecipe(train_johnson.JohnsonRecipe):
    """JohnsonRecipe's data, losses and preview, with the network started from magenta-arbitrary."""

    def build_network(self, precision):
        source = pretrained.load(pretrained.ARBITRARY)
        seen = image_io.to_float(image_io.to_uint8(image_io.resize_shorter_side(
            tf.convert_to_tensor(self.style, tf.float32), defaults.PRETRAINED_STYLE_SIZE)))
        embedding = magenta.style_embedding(source, seen[tf.newaxis])[0]
        with dtype_policy(precision):
            model = build_one_style()
        model.get_layer("transformer").set_weights(source.get_layer("transformer").get_weights())
        model.get_layer("style_condition").set_weights([np.asarray(embedding)])
        set_trainable(model, self.config.finetune)
        return model

    def export_model(self, model):
        with dtype_policy("float32"):
            exported = build_one_style()
        exported.set_weights(model.get_weights())
        return exported
