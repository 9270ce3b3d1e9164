"""Per-image style transfer by optimisation (Gatys et al. 2016): targets, initial image, and the step loop."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_nst import image_io
from tf_nst import losses
from tf_nst.errors import UserInputError
from tf_nst.lbfgs import LBFGS

INIT_MODES = ("content", "noise", "style")
OPTIMIZERS = ("lbfgs", "adam")


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """How one image is optimised.

    Attributes:
      num_steps: optimiser iterations (an L-BFGS iteration may evaluate the loss more than once).
      optimizer: "lbfgs" or "adam".
      learning_rate: Adam's step size, in pixel units (the image lives in [0, 255]).
      lbfgs_history: how many curvature pairs L-BFGS keeps.
      init: "content", "noise", "style", or a path to an image.
      seed: seeds the noise initialisation.
      loss_weights: a losses.LossWeights.
    """

    num_steps: int = 300
    optimizer: str = "lbfgs"
    learning_rate: float = 5.0
    lbfgs_history: int = 100
    init: str = "content"
    seed: int = 0
    loss_weights: losses.LossWeights = losses.LossWeights()


def compute_targets(extractor, content, style, style_layers, content_layers):
    """Style Gram matrices and content activations, computed once.

    Args:
      extractor: the model from vgg.build_extractor.
      content: [H, W, 3] content image in [0, 255].
      style: [H', W', 3] style image in [0, 255]; its size may differ from the content's.
      style_layers, content_layers: layer names.

    Returns:
      (style_grams, content_features): dicts {layer: tensor}.
    """
    style_features = extractor(tf.convert_to_tensor(style, tf.float32)[None])
    content_features = extractor(tf.convert_to_tensor(content, tf.float32)[None])
    return (losses.style_targets(style_features, style_layers),
            {name: content_features[name] for name in content_layers})


def initial_image(init, content, style, seed=0):
    """The image the optimisation starts from, [1, H, W, 3] float32 in [0, 255], H x W as the content.

    Args:
      init: "content", "noise" (Gaussian noise around mid-grey), "style" (the style image resized to the
        content's size), or a path to an image file (resized likewise).
      content, style: [H, W, 3] images in [0, 255].
      seed: seeds the noise.
    """
    size = content.shape[:2]
    if init == "content":
        image = tf.convert_to_tensor(content, tf.float32)
    elif init == "noise":
        noise = tf.random.stateless_normal([*size, 3], seed=[seed, 0], stddev=32.0)
        image = tf.clip_by_value(127.5 + noise, 0.0, 255.0)
    elif init == "style":
        image = image_io.resize(style, size)
    else:
        image = image_io.resize(image_io.read_image(init), size)
    return tf.convert_to_tensor(image, tf.float32)[None]


def make_loss_fn(extractor, style_grams, content_features, loss_weights):
    """Returns loss_fn(images) -> (total, terms) for a fixed set of targets."""

    def loss_fn(images):
        return losses.combined_loss(images, extractor(images), style_grams, content_features, loss_weights)

    return loss_fn


def make_step(image, loss_fn, config):
    """The compiled optimisation step for `image` (a tf.Variable). Returns step() -> (total, terms)."""

    def value_and_grad():
        with tf.GradientTape() as tape:
            tape.watch(image)
            total, terms = loss_fn(image)
        return total, terms, tape.gradient(total, image)

    if config.optimizer == "lbfgs":
        lbfgs = LBFGS(image, history=config.lbfgs_history)

        @tf.function
        def step():
            return lbfgs.step(value_and_grad)

    elif config.optimizer == "adam":
        adam = keras.optimizers.Adam(learning_rate=config.learning_rate)

        @tf.function
        def step():
            total, terms, grad = value_and_grad()
            adam.apply_gradients([(grad, image)])
            image.assign(tf.clip_by_value(image, 0.0, 255.0))
            return total, terms

    else:
        raise UserInputError(f"unknown optimizer {config.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    return step


def transfer(extractor, content, style, config, style_layers, content_layers, callback=None):
    """Stylises `content` with `style` by optimising the pixels.

    Args:
      extractor: the model from vgg.build_extractor, exposing every style and content layer.
      content: [H, W, 3] content image in [0, 255] (uint8 or float).
      style: [H', W', 3] style image in [0, 255].
      config: a TransferConfig.
      style_layers, content_layers: the layers the loss uses.
      callback: optional callback(step, terms, image) called after every step, where terms is a dict of
        float32 scalar tensors ("total", "content", "style", "tv") and image the tf.Variable being optimised.
        Reading the tensors costs a device sync, so a callback should read them only when it reports.

    Returns:
      The stylised image, [H, W, 3] uint8.
    """
    content = tf.convert_to_tensor(content, tf.float32)
    style = tf.convert_to_tensor(style, tf.float32)
    style_grams, content_features = compute_targets(extractor, content, style, style_layers, content_layers)
    image = tf.Variable(initial_image(config.init, content, style, config.seed), name="image")
    loss_fn = make_loss_fn(extractor, style_grams, content_features, config.loss_weights)
    step = make_step(image, loss_fn, config)
    for step_index in range(1, config.num_steps + 1):
        total, terms = step()
        if callback is not None:
            callback(step_index, {"total": total, **terms}, image)
    return np.asarray(image_io.to_uint8(image[0]))

