"""Stateless style-transfer losses: Gram matrices (guided ones too), style, content and total-variation terms.

Every loss is computed in float32, whatever the precision of the features (mixed precision keeps the
Gram matrices and the losses in float32). StyleLoss and PerceptualLoss wrap them as Keras losses.
"""

import dataclasses

import keras
import tensorflow as tf

from tf_nst import defaults

# Inside the square root of a channel's variance (feature_moments): 1e-5, as Huang & Belongie's code.
MOMENT_EPSILON = 1e-5


def gram_matrix(features):
    """Channel correlations of feature maps, averaged over positions.

    G[b, c, d] = sum_{h,w} F[b, h, w, c] F[b, h, w, d] / (H * W).

    Dividing by the number of positions H * W (not by C * H * W as some implementations do) makes G the mean
    outer product of a position's feature vector: it does not grow with the image size, so a style target
    computed at one resolution matches features at another.

    Args:
      features: [batch, height, width, channels] activations.

    Returns:
      [batch, channels, channels] float32 Gram matrices.
    """
    return _gram(tf.cast(features, tf.float32))


@tf.custom_gradient
def _gram(features):
    """gram_matrix of float32 features, formed as one matrix product with its gradient as one more.

    The positions are flattened into rows, so that G = F^T F / (H W) is a single batched matmul that reads F
    transposed in place (an einsum over h, w transposes copies of F first). Autodiff would take the gradient
    of F^T F with respect to each factor, two products of the size of F; since both factors are F it is
    dG/dF . U = F (U + U^T) / (H W), one product. 5-10% of a transfer step at 512 px (BENCHMARKS.md).
    """
    shape = tf.shape(features)
    positions = tf.cast(shape[1] * shape[2], tf.float32)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    gram = tf.matmul(flat, flat, transpose_a=True) / positions

    def gradient(upstream):
        symmetric = (upstream + tf.linalg.matrix_transpose(upstream)) / positions
        return tf.reshape(tf.matmul(flat, symmetric), shape)

    return gram, gradient


def masked_gram_matrix(features, mask):
    """The guided Gram matrix of a weighted region (Gatys et al. 2017, §4.1).

    G[b, c, d] = sum_{h,w} m[h, w] F[b, h, w, c] F[b, h, w, d] / sum_{h,w} m[h, w].

    The mean outer product over the region, as `gram_matrix` is over the whole map: an all-ones mask gives
    `gram_matrix`, and the normalisation by the mask's area keeps a small region's statistics comparable to a
    large one's. Weighting by m (not m^2, as masking F before the product would) makes a soft mask a weighted
    mean. A mask that is zero everywhere gives a zero matrix, not NaN.

    Args:
      features: [batch, height, width, channels] activations.
      mask: [height, width] or [batch, height, width] non-negative weights on the features' grid (see
        image_io.pool_mask).

    Returns:
      [batch, channels, channels] float32 Gram matrices.
    """
    features = tf.cast(features, tf.float32)
    mask = tf.cast(mask, tf.float32)
    if mask.shape.rank == 2:
        mask = mask[None]
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    weights = tf.reshape(mask, [tf.shape(mask)[0], shape[1] * shape[2], 1])
    moments = tf.matmul(flat * weights, flat, transpose_a=True)  # one batched product, as in _gram
    area = tf.reduce_sum(mask, axis=[1, 2])
    return tf.math.divide_no_nan(moments, area[:, None, None])


def _relative_squared_errors(value, target):
    """Per batch entry, sum((value - target)^2) / (sum(target^2) + eps): a squared error free of scale."""
    error = tf.reduce_sum(tf.square(value - target), axis=list(range(1, value.shape.rank)))
    norm = tf.reduce_sum(tf.square(target), axis=list(range(1, target.shape.rank)))
    return error / (norm + 1e-8)


def _relative_squared_error(value, target):
    """The batch mean of `_relative_squared_errors`."""
    return tf.reduce_mean(_relative_squared_errors(value, target))


def style_layer_loss(features, target_gram):
    """Squared Gram-matrix error of one layer, relative to the target's squared norm.

    Gatys et al. 2016 (eq. 4) weight a layer's squared Gram error by 1 / (4 N^2 M^2). Those raw errors differ
    by three orders of magnitude between VGG's first and last blocks, so the first blocks dominate and the
    per-layer weights need retuning for every backbone. Dividing by ||A||^2 makes every layer's term
    dimensionless (0 when matched, about 1 for an unrelated image), so equal layer weights mean equal
    influence, and the same loss weights fit any image size and backbone.

    Args:
      features: [batch, height, width, channels] activations of the image being optimised.
      target_gram: [batch or 1, channels, channels] target Gram matrix.
    """
    gram = gram_matrix(features)
    return _relative_squared_error(gram, tf.broadcast_to(tf.cast(target_gram, tf.float32), tf.shape(gram)))


def guided_style_layer_loss(features, masks, target_grams, blend_weights):
    """Spatially controlled style loss of one layer (Gatys et al. 2017, §4.1).

    sum_i w_i E(masked_gram_matrix(F, m_i), T_i), with E the relative squared error of `style_layer_loss`:
    style i is matched only inside its mask m_i, and positions outside every mask have no style term.

    Args:
      features: [batch, height, width, channels] activations of the image being optimised.
      masks: one [height, width] mask per style, on the features' grid.
      target_grams: one [1, channels, channels] target Gram matrix per style.
      blend_weights: one weight per style, summing to 1.
    """
    terms = []
    for mask, target, weight in zip(masks, target_grams, blend_weights):
        gram = masked_gram_matrix(features, mask)
        target = tf.broadcast_to(tf.cast(target, tf.float32), tf.shape(gram))
        terms.append(weight * _relative_squared_error(gram, target))
    return tf.add_n(terms)


def feature_moments(features, epsilon=MOMENT_EPSILON):
    """Per image and channel, the mean and sqrt(variance + epsilon) over the positions, in float32.

    The statistics that AdaIN transfers and its style loss matches (Huang & Belongie 2017, eq. 5-6); the
    population variance (divided by H * W). Epsilon inside the root keeps a constant channel finite.

    Args:
      features: [batch, height, width, channels].

    Returns:
      (mean, std), each [batch, 1, 1, channels] float32.
    """
    features = tf.cast(features, tf.float32)
    mean, variance = tf.nn.moments(features, axes=[1, 2], keepdims=True)
    return mean, tf.sqrt(variance + epsilon)


def moment_layer_loss(features, target_mean, target_std):
    """Squared error of one layer's channel means and stds, relative to the targets' squared norm.

    Huang & Belongie 2017 (eq. 11) sum ||mu(F) - mu(S)||^2 + ||sigma(F) - sigma(S)||^2 over the layers. Divided
    here by ||mu(S)||^2 + ||sigma(S)||^2, as `style_layer_loss` divides Gram errors: each layer's term is
    dimensionless (0 when matched, about 1 for unrelated statistics), so the first layers' larger
    activations do not outweigh the deeper ones, whatever the backbone and its weights.

    Args:
      features: [batch, height, width, channels] activations of the decoded images.
      target_mean, target_std: [batch or 1, 1, 1, channels]: each image's own style statistics.
    """
    mean, std = feature_moments(features)
    value = tf.concat([mean, std], axis=-1)
    target = tf.concat([tf.broadcast_to(tf.cast(target_mean, tf.float32), tf.shape(mean)),
                        tf.broadcast_to(tf.cast(target_std, tf.float32), tf.shape(std))], axis=-1)
    return _relative_squared_error(value, target)


def content_layer_loss(features, target_features):
    """Squared activation error relative to the target's squared norm (Gatys et al. 2016, eq. 1, scaled).

    Args:
      features, target_features: [batch, height, width, channels] activations.
    """
    return _relative_squared_error(tf.cast(features, tf.float32), tf.cast(target_features, tf.float32))


def total_variation_loss(images):
    """Mean squared difference between vertically and horizontally neighbouring pixels, on a [0, 1] scale.

    A mean rather than a sum, so that the weight does not depend on the image size.

    Args:
      images: [batch, height, width, channels] in [0, 255].
    """
    images = tf.cast(images, tf.float32) / 255.0
    vertical = images[:, 1:, :, :] - images[:, :-1, :, :]
    horizontal = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_mean(tf.square(vertical)) + tf.reduce_mean(tf.square(horizontal))


def temporal_loss(images, target, mask):
    """Ruder et al. 2016's short-term temporal loss (eq. 7): the squared difference to the previous frame's
    result warped into this frame, where the flow is reliable, as a mean over pixels and channels on a [0, 1]
    scale (size-independent, like total_variation_loss).

    Args:
      images: [batch, height, width, 3] in [0, 255].
      target: [height, width, 3] (or broadcastable) in [0, 255]: the warped previous result.
      mask: [height, width] in [0, 1]: 1 where the flow can be trusted, 0 where it cannot.
    """
    difference = (tf.cast(images, tf.float32) - tf.cast(target, tf.float32)) / 255.0
    return tf.reduce_mean(tf.cast(mask, tf.float32)[..., None] * tf.square(difference))


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """How much each term counts.

    Attributes:
      content: weight of the mean content-layer loss.
      style: weight of the weighted mean style-layer loss.
      tv: weight of the total-variation loss.
      style_layers: {layer: relative weight}; the style term is sum_l w_l E_l / sum_l w_l, so only the ratios
        between layers matter. Layers missing here weigh 1.
    """

    content: float = defaults.CONTENT_WEIGHT
    style: float = defaults.STYLE_WEIGHT
    tv: float = defaults.TV_WEIGHT
    style_layers: dict = dataclasses.field(default_factory=dict)


def style_layer_weights(style_layers, given=None):
    """{layer: relative weight} for LossWeights.style_layers: `given` (one per layer) if any, else 1 each."""
    weights = given or [1.0] * len(style_layers)
    return dict(zip(style_layers, (float(weight) for weight in weights), strict=True))


def used_style_layers(style_layers, weights):
    """The style layers that count in the loss: those whose weight in `weights` (a LossWeights) is not 0."""
    return tuple(name for name in style_layers if weights.style_layers.get(name, 1.0) != 0)


def style_targets(features, style_layers):
    """{layer: Gram matrix} of a style image's features."""
    return {name: gram_matrix(features[name]) for name in style_layers}


@dataclasses.dataclass(frozen=True)
class GuidedStyleTargets:
    """Style targets under spatial control (Gatys et al. 2017, §4.1): one target and one region per style.

    Attributes:
      grams: {layer: [target Gram matrix of style i, ...]}.
      masks: {layer: [content mask of style i on the layer's grid, ...]}.
      blend_weights: one weight per style, summing to 1.
    """

    grams: dict
    masks: dict
    blend_weights: tuple


@dataclasses.dataclass(frozen=True)
class MomentTargets:
    """Style targets as channel means and stds (Huang & Belongie 2017, §6), for the arbitrary-style network.

    Attributes:
      moments: {layer: (mean, std)}, each [batch or 1, 1, 1, channels] (feature_moments); with a batch, each
        image has its own style.
    """

    moments: dict


def moment_targets(features, style_layers):
    """A MomentTargets of style images' features."""
    return MomentTargets({name: feature_moments(features[name]) for name in style_layers})


def combined_loss(images, features, style_grams, content_features, weights):
    """The total loss and its named, weighted terms.

    Args:
      images: the images being optimised, [batch, height, width, 3] in [0, 255] (for the TV term).
      features: {layer: activations} of `images`.
      style_grams: {layer: target Gram matrix}, a GuidedStyleTargets for spatial control, or a MomentTargets
        (mean and std matching, for the arbitrary-style network); these layers form the style term.
      content_features: {layer: target activations}; these layers form the content term.
      weights: a LossWeights.

    Returns:
      (total, {"content": ..., "style": ..., "tv": ...}) as float32 scalars, where total is the sum of the
      terms.
    """
    content = tf.add_n([content_layer_loss(features[name], target)
                        for name, target in content_features.items()]) / len(content_features)
    if isinstance(style_grams, GuidedStyleTargets):
        guides = style_grams
        layer_losses = {name: guided_style_layer_loss(features[name], guides.masks[name], targets,
                                                      guides.blend_weights)
                        for name, targets in guides.grams.items()}
    elif isinstance(style_grams, MomentTargets):
        layer_losses = {name: moment_layer_loss(features[name], *target)
                        for name, target in style_grams.moments.items()}
    else:
        layer_losses = {name: style_layer_loss(features[name], target) for name, target in style_grams.items()}
    layer_weights = {name: float(weights.style_layers.get(name, 1.0)) for name in layer_losses}
    style = tf.add_n([layer_weights[name] * loss for name, loss in layer_losses.items()]) / sum(
        layer_weights.values())
    terms = {
        "content": weights.content * content,
        "style": weights.style * style,
        "tv": weights.tv * total_variation_loss(images),
    }
    return tf.add_n(list(terms.values())), terms


# --- Keras losses, for image-to-image models trained with model.compile(loss=...) and fit -------------------


class _FeatureLoss(keras.losses.Loss):
    """A loss on the VGG features of y_pred and y_true, images [batch, H, W, 3] in [0, 255].

    The frozen extractor (vgg.build_extractor) is built on the first call and is not part of the config.
    """

    def __init__(self, layers, layer_weights=None, backbone=defaults.BACKBONE, weights=defaults.WEIGHTS,
                 pooling="max", name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.layers = tuple(layers)
        self.layer_weights = None if layer_weights is None else tuple(float(w) for w in layer_weights)
        if self.layer_weights is not None and len(self.layer_weights) != len(self.layers):
            raise ValueError(f"layer_weights has {len(self.layer_weights)} entries for {len(self.layers)} "
                             f"layers; received layer_weights={layer_weights}")
        self.backbone, self.weights, self.pooling = backbone, weights, pooling
        self._extractor = None

    def _features(self, images):
        if self._extractor is None:
            from tf_nst import vgg  # pylint: disable=import-outside-toplevel

            self._extractor = vgg.build_extractor(vgg.ExtractorConfig(
                backbone=self.backbone, weights=self.weights, style_layers=self.layers, content_layers=self.layers,
                pooling=self.pooling))
        return self._extractor(tf.cast(images, tf.float32))

    def _layer_errors(self, y_true, y_pred):
        """{layer: [batch] relative error}; subclasses say which error."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        errors = self._layer_errors(y_true, y_pred)
        weights = self.layer_weights or (1.0,) * len(self.layers)
        return tf.add_n([w * errors[name] for name, w in zip(self.layers, weights)]) / sum(weights)

    def get_config(self):
        return {**super().get_config(), "layers": list(self.layers),
                "layer_weights": None if self.layer_weights is None else list(self.layer_weights),
                "backbone": self.backbone, "weights": self.weights, "pooling": self.pooling}


@keras.saving.register_keras_serializable(package="tf_nst")
class StyleLoss(_FeatureLoss):
    """Gram-matrix (style) distance between y_pred and y_true (Gatys et al. 2016), per image.

    Each layer's error is `||G(pred) - G(true)||^2 / ||G(true)||^2` (see style_layer_loss); the loss is their
    weighted mean over `layers` (default: the style layers of tf_nst.defaults).
    """

    def __init__(self, layers=defaults.STYLE_LAYERS, name="style_loss", **kwargs):
        super().__init__(layers, name=name, **kwargs)

    def _layer_errors(self, y_true, y_pred):
        pred, true = self._features(y_pred), self._features(y_true)
        return {name: _relative_squared_errors(gram_matrix(pred[name]), gram_matrix(true[name]))
                for name in self.layers}


@keras.saving.register_keras_serializable(package="tf_nst")
class PerceptualLoss(_FeatureLoss):
    """Feature (content) distance between y_pred and y_true (Johnson et al. 2016, feature reconstruction).

    Each layer's error is `||F(pred) - F(true)||^2 / ||F(true)||^2` (see content_layer_loss); the loss is
    their weighted mean over `layers` (default: the content layers of tf_nst.defaults).
    """

    def __init__(self, layers=defaults.CONTENT_LAYERS, name="perceptual_loss", **kwargs):
        super().__init__(layers, name=name, **kwargs)

    def _layer_errors(self, y_true, y_pred):
        pred, true = self._features(y_pred), self._features(y_true)
        return {name: _relative_squared_errors(pred[name], true[name]) for name in self.layers}
