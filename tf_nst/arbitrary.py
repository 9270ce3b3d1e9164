"""What every network that takes a style image offers, whichever it is: the AdaIN network trained here
(tf_nst.adain) or Magenta's pretrained arbitrary-style network (tf_nst.magenta).

A style becomes a vector once (the "embedding": AdaIN's 1920 feature statistics, Magenta's 100-d embedding);
content is stylised from blends of such vectors. stylize, export, LiteRT and RandomStyle go through here.
"""

import tensorflow as tf

from tf_nst import adain
from tf_nst import defaults
from tf_nst import magenta


def is_arbitrary(model):
    """Whether a loaded stylizer takes a style image (AdaIN's or Magenta's arbitrary network)."""
    return adain.is_arbitrary(model) or magenta.is_arbitrary(model)


def is_multistyle(model):
    """Whether a loaded stylizer takes weights over built-in styles (Magenta's 26-style network)."""
    return magenta.is_multistyle(model)


def embedding_size(model):
    """The length of one style's vector."""
    return magenta.EMBEDDING_SIZE if magenta.is_arbitrary(model) else adain.STATISTICS_SIZE


def default_style_size(model):
    """The shorter side styles are resized to when none is given: the size each network was trained on."""
    return defaults.PRETRAINED_STYLE_SIZE if magenta.is_arbitrary(model) else defaults.STYLE_SIZE


def min_style_side(model):
    return magenta.MIN_STYLE_SIDE if magenta.is_arbitrary(model) else adain.MIN_STYLE_SIDE


def style_embedding(model, styles):
    """[N, H, W, 3] style images in [0, 255] -> float32 [N, embedding_size(model)]."""
    if magenta.is_arbitrary(model):
        return magenta.style_embedding(model, styles)
    return adain.style_statistics(model, styles)


def usable_embedding(model, vectors):
    """bool [N]: whether each row of [N, embedding_size] could have come from style_embedding (finite, and for
    AdaIN positive standard deviations)."""
    vectors = tf.cast(vectors, tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(vectors), axis=-1)
    if magenta.is_arbitrary(model):
        return finite
    _, std = adain.encoder_moments(vectors)
    return finite & tf.reduce_all(tf.reshape(std, [tf.shape(vectors)[0], -1]) > 0, axis=-1)


def stylize_with_embeddings(model, content, embeddings, blend_weights=None, alpha=1.0, masks=None):
    """Stylises [N, H, W, 3] content in [0, 255] with a blend of styles given as vectors.

    Args:
      embeddings: a list of [1 or N, embedding_size], one per style.
      blend_weights: one non-negative weight per style (None: equal), normalised to sum to 1.
      alpha: 0 keeps the content (its own features or embedding), 1 is full style.
      masks: optional, one [H, W] weight map in [0, 1] per style at the content's size.

    Returns:
      float32 [N, H, W, 3] in [0, 255].
    """
    if magenta.is_arbitrary(model):
        return magenta.stylize_with_embeddings(model, content, embeddings, blend_weights, alpha, masks)
    return adain.stylize_with_statistics(model, content, embeddings, blend_weights, alpha, masks)


def stylize(model, content, styles, blend_weights=None, alpha=1.0):
    """stylize_with_embeddings from style images: a list of [1 or N, H_i, W_i, 3] in [0, 255]."""
    return stylize_with_embeddings(model, content, [style_embedding(model, style) for style in styles],
                                   blend_weights, alpha)
