"""Style and content targets of per-image optimisation: Gram matrices of the style images (blended, guided
by masks, or measured in pieces for large images) and the content image's activations, computed once.
"""

import numpy as np
import tensorflow as tf

from tf_nst import image_io
from tf_nst import losses
from tf_nst import vgg
from tf_nst.errors import UserInputError


def compute_targets(extractor, content, styles, style_layers, content_layers, blend_weights=None,
                    content_masks=None, style_masks=None, piece_size=None):
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
      piece_size: style images with a side longer than this are measured in pieces (see style_grams).

    Returns:
      (style_grams, content_features). content_features is {layer: tensor}. Without content_masks,
      style_grams is {layer: sum_i w_i G_i}, the blended Gram target; with them, a
      losses.GuidedStyleTargets holding each style's target and content mask on every layer's grid.
    """
    per_style, weights = per_style_grams(extractor, styles, style_layers, blend_weights, style_masks, piece_size)
    content_features = extractor(tf.convert_to_tensor(content, tf.float32)[None])
    layer_masks = None
    if content_masks is not None:
        layer_masks = {name: [image_io.pool_mask(mask, content_features[name].shape[1:3]) for mask in content_masks]
                       for name in style_layers}
    style_grams = combine_targets(per_style, weights, style_layers, layer_masks)
    return style_grams, {name: content_features[name] for name in content_layers}


def per_style_grams(extractor, styles, style_layers, blend_weights, style_masks, piece_size):
    """([{layer: Gram matrix} of each style], the normalised blend weights)."""
    styles = as_image_list(styles)
    weights = _normalised_blend_weights(blend_weights, len(styles))
    per_style = [style_grams(extractor, style, style_layers, mask, piece_size)
                 for style, mask in zip(styles, style_masks or [None] * len(styles))]
    return per_style, weights


def combine_targets(per_style, weights, style_layers, layer_masks=None):
    """The style loss's targets: the blended Gram matrices, or with layer_masks ({layer: [one mask per style
    on the layer's grid]}) a losses.GuidedStyleTargets."""
    if layer_masks is None:
        return _blended_grams(per_style, weights, style_layers)
    return losses.GuidedStyleTargets(grams={name: [grams[name] for grams in per_style] for name in style_layers},
                                     masks=layer_masks, blend_weights=tuple(weights))


def _blended_grams(per_style, weights, style_layers):
    """{layer: sum_i w_i G_i}."""
    blended = {name: 0.0 for name in style_layers}
    for grams, weight in zip(per_style, weights):
        for name in style_layers:
            blended[name] += weight * grams[name]
    return blended


def _normalised_blend_weights(blend_weights, num_styles):
    weights = [1.0] * num_styles if blend_weights is None else [float(w) for w in blend_weights]
    if len(weights) != num_styles or min(weights) < 0 or sum(weights) <= 0:
        raise UserInputError(
            f"style blend weights {weights} do not fit {num_styles} style image(s); give one "
            "non-negative weight per style, not all zero")
    return [weight / sum(weights) for weight in weights]


# Style pieces start on multiples of VGG's largest stride (block5_pool: 32 px), so that every layer's grid of
# a piece lines up with the whole image's, and see this much context on each side: about the receptive field
# of block4_conv1, as the tiles' default overlap.
_PIECE_ALIGN = 32
_PIECE_MARGIN = 64


def style_grams(extractor, style, style_layers, mask=None, piece_size=None):
    """{layer: Gram matrix} of one style image; with a mask, the guided Gram matrix of the masked region.

    A style image with a side longer than `piece_size` is measured in pieces, so that memory depends on the
    piece size: a (guided) Gram matrix is a mean over positions, so the whole image's is the area-weighted
    mean of its pieces'. Each piece is run through VGG with _PIECE_MARGIN px of the image around it and only
    its own cells are counted, so the result differs from the whole image's only where a deep layer's
    receptive field reaches beyond the margin.

    Args:
      extractor: the model from vgg.build_extractor.
      style: [H, W, 3] style image in [0, 255].
      style_layers: layer names.
      mask: optional [H, W] weights of the region whose statistics are the target (Gatys et al. 2017, §4.1).
      piece_size: None, or the longest side the extractor should see (pieces with their context are at
        most this size, and 192 px at least).

    Raises:
      UserInputError: the mask's region vanishes on a layer's grid.
    """
    style = tf.convert_to_tensor(style, tf.float32)
    height, width = int(style.shape[0]), int(style.shape[1])
    mask = None if mask is None else np.asarray(mask, np.float32)
    if piece_size is None or max(height, width) <= piece_size:
        pieces = [(_window(0, 0, height, width, height, width),) * 2]
    else:
        pieces = _style_pieces(height, width, piece_size)
    measured = {name: [] for name in style_layers}  # [(area, Gram matrix)] of the pieces with an area
    for window, context in pieces:
        features = extractor(style[context][None])
        for name in style_layers:
            area, gram = _piece_gram(features[name], window, context, _stride(name), mask)
            if area > 0:  # a thin last piece may have no cell on a deep layer's grid
                measured[name].append((area, gram))
    grams = {}
    for name, parts in measured.items():
        if not parts:
            raise UserInputError(
                f"a style mask's region vanishes at {name} ({width // _stride(name)}x{height // _stride(name)} "
                "cells); make its white region larger")
        grams[name] = parts[0][1] if len(parts) == 1 else tf.add_n([a * g for a, g in parts]) / sum(
            a for a, _ in parts)
    return grams


def _piece_gram(features, window, context, stride, mask):
    """(area, Gram matrix) of a piece's own cells in the features of its context; guided with a mask."""
    rows, columns = window
    features = features[:, _cells(rows, context[0], stride), _cells(columns, context[1], stride)]
    if mask is None:
        return float(features.shape[1] * features.shape[2]), losses.gram_matrix(features)
    layer_mask = image_io.pool_mask(mask[window], features.shape[1:3])
    return float(tf.reduce_sum(layer_mask)), losses.masked_gram_matrix(features, layer_mask)


def _stride(name):
    """Pixels per cell of a VGG layer's grid: 2 ** (poolings up to it), the side that leaves it 1x1."""
    return vgg.min_input_size((name,))


def _style_pieces(height, width, piece_size):
    """[((rows, columns), (context_rows, context_columns))]: aligned pieces of the image and their context."""
    block = max(2 * _PIECE_ALIGN, (piece_size - 2 * _PIECE_MARGIN) // _PIECE_ALIGN * _PIECE_ALIGN)
    return [(_window(top, left, block, block, height, width),
             _window(top - _PIECE_MARGIN, left - _PIECE_MARGIN, block + 2 * _PIECE_MARGIN,
                     block + 2 * _PIECE_MARGIN, height, width))
            for top in range(0, height, block) for left in range(0, width, block)]


def _window(top, left, rows, columns, height, width):
    return (slice(max(0, top), min(height, top + rows)), slice(max(0, left), min(width, left + columns)))


def _cells(pixels, context, stride):
    """The cells of a piece (a slice of pixels) on a layer's grid of its context (a larger slice)."""
    first = (pixels.start - context.start) // stride
    return slice(first, first + (pixels.stop - pixels.start) // stride)


def as_image_list(images):
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]
