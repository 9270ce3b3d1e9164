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
COLOR_MODES = ("none", "luminance", "histogram")
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
      style_blend_weights: one weight per style image (default: equal); the style target is the weighted
        mean of the styles' Gram matrices.
      num_scales: coarse-to-fine: optimise first at 1 / scale_factor^(num_scales - 1) of the size, then
        upsample the result and continue at each larger scale, ending at the full size.
      scale_factor: the size ratio between neighbouring scales.
      coarse_steps: iterations at each scale but the finest (default: num_steps).
      jit_compile: compile the step with XLA.
      preserve_color: "none"; "luminance" to transfer on luminance only and keep the content's colours
        (Gatys et al. 2017, §5.1); or "histogram" to give the style images the content's colour mean and
        covariance before the run (§5.2).
      color_transform: for "histogram", "chol" (Cholesky) or "sym" (symmetric/PCA square roots).
      content_masks: spatial control (Gatys et al. 2017, §4): one [H, W] mask in [0, 1] per style image, of
        the content's aspect ratio (resized to it); style i is matched only where its mask is non-zero, and
        where every mask is 0 only the content and TV terms apply. None: every style everywhere (blended).
      style_masks: one [H', W'] mask in [0, 1] per style image, of that style's aspect ratio: the region of
        the style image whose statistics are its target (§4.1). None: the whole style images.
    """

    num_steps: int = 300
    optimizer: str = "lbfgs"
    learning_rate: float = 5.0
    lbfgs_history: int = 100
    init: str = "content"
    seed: int = 0
    loss_weights: losses.LossWeights = losses.LossWeights()
    style_blend_weights: tuple = None
    num_scales: int = 1
    scale_factor: float = 2.0
    coarse_steps: int = None
    jit_compile: bool = False
    preserve_color: str = "none"
    color_transform: str = "chol"
    content_masks: tuple = None
    style_masks: tuple = None


def compute_targets(extractor, content, styles, style_layers, content_layers, blend_weights=None,
                    content_masks=None, style_masks=None):
    """Style Gram matrices and content activations, computed once.

    Args:
      extractor: the model from vgg.build_extractor.
      content: [H, W, 3] content image in [0, 255].
      styles: one [H', W', 3] style image in [0, 255], or a list of them; sizes may differ.
      style_layers, content_layers: layer names.
      blend_weights: one non-negative weight per style image (default: equal), normalised to sum 1.
      content_masks: optional, one [H, W] mask per style image at the content's size (spatial control).
      style_masks: optional, one [H', W'] mask (or None) per style image at that style's size: its Gram
        target is the guided Gram matrix of the masked region (Gatys et al. 2017, §4.1).

    Returns:
      (style_grams, content_features). content_features is {layer: tensor}. Without content_masks,
      style_grams is {layer: sum_i w_i G_i}, the blended Gram target; with them, a
      losses.GuidedStyleTargets holding each style's target and content mask on every layer's grid.
    """
    styles = _as_image_list(styles)
    weights = _normalised_blend_weights(blend_weights, len(styles))
    per_style = [_style_grams(extractor, style, style_layers, mask)
                 for style, mask in zip(styles, style_masks or [None] * len(styles))]
    content_features = extractor(tf.convert_to_tensor(content, tf.float32)[None])
    if content_masks is None:
        style_grams = {name: 0.0 for name in style_layers}
        for grams, weight in zip(per_style, weights):
            for name in style_layers:
                style_grams[name] += weight * grams[name]
    else:
        style_grams = losses.GuidedStyleTargets(
            grams={name: [grams[name] for grams in per_style] for name in style_layers},
            masks={name: [image_io.pool_mask(mask, content_features[name].shape[1:3]) for mask in content_masks]
                   for name in style_layers},
            blend_weights=tuple(weights))
    return style_grams, {name: content_features[name] for name in content_layers}


def _normalised_blend_weights(blend_weights, num_styles):
    weights = [1.0] * num_styles if blend_weights is None else [float(w) for w in blend_weights]
    if len(weights) != num_styles or min(weights) < 0 or sum(weights) <= 0:
        raise UserInputError(
            f"style blend weights {weights} do not fit {num_styles} style image(s); give one "
            "non-negative weight per style, not all zero")
    return [weight / sum(weights) for weight in weights]


def _style_grams(extractor, style, style_layers, mask=None):
    """{layer: Gram matrix} of one style image; with a mask, of the masked region only."""
    features = extractor(tf.convert_to_tensor(style, tf.float32)[None])
    if mask is None:
        return losses.style_targets(features, style_layers)
    grams = {}
    for name in style_layers:
        layer_mask = image_io.pool_mask(mask, features[name].shape[1:3])
        if not float(tf.reduce_max(layer_mask)) > 0:
            raise UserInputError(
                f"a style mask's region vanishes at {name} ({features[name].shape[2]}x{features[name].shape[1]} "
                "cells); make its white region larger")
        grams[name] = losses.masked_gram_matrix(features[name], layer_mask)
    return grams


def _as_image_list(images):
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def initial_image(init, content, style, seed=0):
    """The image the optimisation starts from, [1, H, W, 3] float32 in [0, 255], H x W as the content.

    Args:
      init: "content", "noise" (Gaussian noise around mid-grey), "style" (the first style image resized to
        the content's size), or a path to an image file (resized likewise).
      content: [H, W, 3] image in [0, 255].
      style: one [H, W, 3] image in [0, 255] or a list of them.
      seed: seeds the noise.
    """
    size = content.shape[:2]
    if init == "content":
        image = tf.convert_to_tensor(content, tf.float32)
    elif init == "noise":
        noise = tf.random.stateless_normal([*size, 3], seed=[seed, 0], stddev=32.0)
        image = tf.clip_by_value(127.5 + noise, 0.0, 255.0)
    elif init == "style":
        image = image_io.resize(_as_image_list(style)[0], size)
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

        @tf.function(jit_compile=config.jit_compile)
        def step():
            return lbfgs.step(value_and_grad)

    elif config.optimizer == "adam":
        adam = keras.optimizers.Adam(learning_rate=config.learning_rate)

        @tf.function(jit_compile=config.jit_compile)
        def step():
            total, terms, grad = value_and_grad()
            adam.apply_gradients([(grad, image)])
            image.assign(tf.clip_by_value(image, 0.0, 255.0))
            return total, terms

    else:
        raise UserInputError(f"unknown optimizer {config.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    return step


def scale_sizes(height, width, num_scales, scale_factor):
    """[(height, width)] from the coarsest scale to the full size (the last entry)."""
    sizes = []
    for level in reversed(range(num_scales)):
        ratio = scale_factor ** -level
        sizes.append((max(1, round(height * ratio)), max(1, round(width * ratio))))
    return sizes


def transfer(extractor, content, style, config, style_layers, content_layers, callback=None):
    """Stylises `content` with one or more style images by optimising the pixels.

    With config.num_scales > 1 the optimisation runs coarse-to-fine: each scale starts from the previous
    scale's result, upsampled, and style images are scaled by the same ratio as the content. Masks
    (config.content_masks, config.style_masks) are resized to the content's and each style's size at every
    scale.

    Args:
      extractor: the model from vgg.build_extractor, exposing every style and content layer.
      content: [H, W, 3] content image in [0, 255] (uint8 or float).
      style: one [H', W', 3] style image in [0, 255], or a list of them (see config.style_blend_weights).
      config: a TransferConfig.
      style_layers, content_layers: the layers the loss uses.
      callback: optional callback(step, terms, image) called after every step, where step counts across
        scales, terms is a dict of float32 scalar tensors ("total", "content", "style", "tv") and image the
        tf.Variable being optimised. Reading the tensors costs a device sync, so a callback should read
        them only when it reports.

    Returns:
      The stylised image, [H, W, 3] uint8.
    """
    original = tf.convert_to_tensor(content, tf.float32)
    content, styles = _prepare_colors(original, _as_image_list(style), config)
    _check_masks(config, len(styles))
    sizes = scale_sizes(*content.shape[:2], config.num_scales, config.scale_factor)
    coarse_steps = config.num_steps if config.coarse_steps is None else config.coarse_steps
    image, done = None, 0
    for index, size in enumerate(sizes):
        ratio = size[0] / int(content.shape[0])
        scaled_content = image_io.resize(content, size) if index < len(sizes) - 1 else content
        scaled_styles = [s if ratio == 1 else image_io.resize(s, _scaled(s.shape, ratio)) for s in styles]
        content_masks, style_masks = _scaled_masks(config, size, scaled_styles)
        style_grams, content_features = compute_targets(
            extractor, scaled_content, scaled_styles, style_layers, content_layers, config.style_blend_weights,
            content_masks, style_masks)
        start = (initial_image(config.init, scaled_content, scaled_styles, config.seed) if image is None
                 else image_io.resize(image, size))
        image = tf.Variable(start, name="image")
        step = make_step(image, make_loss_fn(extractor, style_grams, content_features, config.loss_weights),
                         config)
        for _ in range(config.num_steps if index == len(sizes) - 1 else coarse_steps):
            total, terms = step()
            done += 1
            if callback is not None:
                callback(done, {"total": total, **terms}, image)
    result = image[0]
    if config.preserve_color == "luminance":
        result = image_io.keep_content_colors(result, original)
    return np.asarray(image_io.to_uint8(result))


def _check_masks(config, num_styles):
    """Raises UserInputError unless the masks fit the styles: one 2-D mask each, style masks not all 0."""
    for kind, masks in (("content", config.content_masks), ("style", config.style_masks)):
        if masks is None:
            continue
        if len(masks) != num_styles:
            raise UserInputError(f"{len(masks)} {kind} mask(s) for {num_styles} style image(s); give one per style")
        for index, mask in enumerate(masks, start=1):
            if np.ndim(mask) != 2:
                raise UserInputError(f"{kind} mask {index} has shape {np.shape(mask)}; expected [height, width]")
            if kind == "style" and not np.max(mask) > 0:
                raise UserInputError(f"style mask {index} is all black: it selects no part of style image {index}")


def _scaled_masks(config, size, styles):
    """The (content_masks, style_masks) resized to the content's `size` and to each of `styles`."""
    content_masks = style_masks = None
    if config.content_masks is not None:
        content_masks = [image_io.resize_mask(mask, size) for mask in config.content_masks]
    if config.style_masks is not None:
        style_masks = [image_io.resize_mask(mask, style.shape[:2]) for mask, style in zip(config.style_masks, styles)]
    return content_masks, style_masks


def _prepare_colors(content, styles, config):
    """The (content, styles) the optimisation sees under config.preserve_color."""
    styles = [tf.convert_to_tensor(s, tf.float32) for s in styles]
    if config.preserve_color == "none":
        return content, styles
    if config.preserve_color == "luminance":
        return image_io.luminance_image(content), [image_io.match_luminance(s, content) for s in styles]
    if config.preserve_color == "histogram":
        return content, [image_io.match_color(s, content, config.color_transform) for s in styles]
    raise UserInputError(
        f"unknown preserve_color {config.preserve_color!r}; use one of {', '.join(COLOR_MODES)}")


def _scaled(shape, ratio):
    return max(1, round(int(shape[0]) * ratio)), max(1, round(int(shape[1]) * ratio))
