"""Per-image style transfer by optimisation (Gatys et al. 2016): the initial image and the step loop. The
targets come from tf_nst.style_targets; counting steps and stopping early, from tf_nst.progress.

Large scales can be optimised in overlapping tiles (tf_nst.tiling) so that memory follows the tile size.
"""

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from tf_nst import defaults
from tf_nst import image_io
from tf_nst import losses
from tf_nst import precision as precision_lib
from tf_nst import progress as progress_lib
from tf_nst import sizes
from tf_nst import style_targets
from tf_nst import tiling
from tf_nst.errors import UserInputError
from tf_nst.lbfgs import LBFGS
from tf_nst.progress import TransferStopped
from tf_nst.sizes import PRETRAINED_INIT  # pylint: disable=unused-import  # re-exported: the size rule lives in sizes.py
from tf_nst.sizes import auto_num_scales  # pylint: disable=unused-import
from tf_nst.sizes import check_sizes
from tf_nst.sizes import resolve_num_scales
from tf_nst.sizes import scale_sizes

INIT_MODES = ("content", "noise", "style")
COLOR_MODES = ("none", "luminance", "histogram")
OPTIMIZERS = ("lbfgs", "adam")


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """How one image is optimised.

    Attributes:
      num_steps: optimiser iterations (an L-BFGS iteration may evaluate the loss more than once); the upper
        bound when `tolerance` stops a scale early.
      optimizer: "lbfgs" or "adam".
      learning_rate: Adam's step size, in pixel units (the image lives in [0, 255]).
      lbfgs_history: how many curvature pairs L-BFGS keeps.
      init: "noise" (the default), "content", "style", "pretrained" (the pretrained arbitrary network's one-pass
        result; num_scales "auto" is then 1), or a path to an image.
      seed: seeds the noise initialisation.
      loss_weights: a losses.LossWeights. None (the default): per-image transfer's, filled in for the style
        layers of the run by resolve_loss_weights (see transfer_loss_weights; not losses.LossWeights()'s,
        which are training's). Style layers of weight 0 are left out of the loss.
      style_blend_weights: one weight per style image (default: equal); the style target is the weighted
        mean of the styles' Gram matrices.
      num_scales: coarse-to-fine: optimise first at 1 / scale_factor^(num_scales - 1) of the size, then
        upsample the result and continue at each larger scale, ending at the full size. "auto" (the default):
        from the size (auto_num_scales: down to about 64 px, so 3 scales at 256 px, 4 at 512 px), fewer where a
        style would get too small for the layers (resolve_num_scales).
      scale_factor: the size ratio between neighbouring scales.
      coarse_steps: iterations at each scale but the finest (default 100); None: num_steps.
      content_detail: coarse-to-fine: start each finer scale from the coarser result upsampled plus the
        content's detail that the coarser scale could not hold (the content at this scale minus its copy down-
        and upsampled through the coarser size), clipped to [0, 255]; False: the coarser result upsampled. The
        detail is the content's whatever the init and the content weight, so for a texture-only run (content
        weight 0) or a chosen start image, set it False.
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
      tile_size: memory-bounded high resolution: a scale whose height or width exceeds this many pixels is
        optimised in overlapping tile_size x tile_size tiles, one after another in raster order, each for the
        scale's number of steps, and style images larger than it are measured in pieces, so that memory
        depends on the tile size, not on the image size. Style targets stay those of the whole style images.
        None or 0: whole images.
      tile_overlap: the fewest pixels neighbouring tiles share; across them the tiles cross-fade linearly
        (tiling.blend_weight). tile_size must be at least tiling.MIN_TILE_SIZE and more than twice this.
      tolerance: stop a scale (or tile) once its best total loss improved by less than this fraction over the
        last `tolerance_window` steps (progress.Convergence); 0 runs every step.
      tolerance_window: the steps that improvement is measured over.
    """

    num_steps: int = defaults.NUM_STEPS
    optimizer: str = defaults.OPTIMIZER
    learning_rate: float = defaults.LEARNING_RATE
    lbfgs_history: int = defaults.LBFGS_HISTORY
    init: str = defaults.INIT
    seed: int = 0
    loss_weights: losses.LossWeights | None = None
    style_blend_weights: tuple = None
    num_scales: object = defaults.NUM_SCALES
    scale_factor: float = 2.0
    coarse_steps: int = defaults.COARSE_STEPS
    content_detail: bool = defaults.CONTENT_DETAIL
    jit_compile: bool = False
    preserve_color: str = "none"
    color_transform: str = "chol"
    content_masks: tuple = None
    style_masks: tuple = None
    tile_size: int = None
    tile_overlap: int = tiling.DEFAULT_OVERLAP
    tolerance: float = defaults.TOLERANCE
    tolerance_window: int = defaults.TOLERANCE_WINDOW


def transfer_loss_weights(style_layers, content=None, style=None, tv=None, layer_weights=None):
    """Per-image transfer's losses.LossWeights for a run on `style_layers`, the one place its defaults apply.

    Each of content, style and tv is the given weight, else defaults.CONTENT_WEIGHT, TRANSFER_STYLE_WEIGHT and
    TRANSFER_TV_WEIGHT. The style layers weigh `layer_weights` (one per layer) if given; else, when
    `style_layers` are defaults.STYLE_LAYERS, the weights tuned on them (defaults.TRANSFER_STYLE_LAYER_WEIGHTS:
    block5_conv1 at 0); else 1 each.
    """
    layer_weights = sizes.transfer_layer_weights(style_layers, layer_weights)
    return losses.LossWeights(
        content=defaults.CONTENT_WEIGHT if content is None else content,
        style=defaults.TRANSFER_STYLE_WEIGHT if style is None else style,
        tv=defaults.TRANSFER_TV_WEIGHT if tv is None else tv,
        style_layers=losses.style_layer_weights(style_layers, layer_weights))


def resolve_loss_weights(config, style_layers):
    """`config` with its loss weights filled in for `style_layers` (transfer_loss_weights) where they are None."""
    if config.loss_weights is not None:
        return config
    return dataclasses.replace(config, loss_weights=transfer_loss_weights(style_layers))


def initial_image(init, content, style, seed=0, blend_weights=None, content_masks=None):
    """The image the optimisation starts from, [1, H, W, 3] float32 in [0, 255], H x W as the content.

    Args:
      init: "content", "noise" (Gaussian noise around mid-grey), "style" (the first style image resized to
        the content's size), "pretrained" (the pretrained arbitrary network's one-pass result for the same content,
        styles, blend and masks: pretrained_start), or a path to an image file (resized likewise).
      content: [H, W, 3] image in [0, 255].
      style: one [H, W, 3] image in [0, 255] or a list of them.
      seed: seeds the noise.
      blend_weights, content_masks: the run's style blend and masks (at the content's size), for "pretrained".
    """
    size = content.shape[:2]
    if init == "content":
        image = tf.convert_to_tensor(content, tf.float32)
    elif init == "noise":
        noise = tf.random.stateless_normal([*size, 3], seed=[seed, 0], stddev=32.0)
        image = tf.clip_by_value(127.5 + noise, 0.0, 255.0)
    elif init == "style":
        image = image_io.resize(style_targets.as_image_list(style)[0], size)
    elif init == PRETRAINED_INIT:
        image = pretrained_start(content, style_targets.as_image_list(style), blend_weights, content_masks)
    else:
        image = image_io.resize(image_io.read_image(init), size)
    return tf.convert_to_tensor(image, tf.float32)[None]




@functools.lru_cache(maxsize=1)
def _pretrained_network():
    from tf_nst import pretrained  # pylint: disable=import-outside-toplevel

    return pretrained.load(pretrained.ARBITRARY)


def pretrained_start(content, styles, blend_weights=None, content_masks=None):
    """The pretrained arbitrary network's picture of `content` in `styles` (blended, masked), as --init=pretrained
    starts from it: [H, W, 3] float32 in [0, 255]. Each style is seen at the network's style size."""
    from tf_nst import arbitrary  # pylint: disable=import-outside-toplevel

    model = _pretrained_network()
    seen = [image_io.to_float(image_io.to_uint8(image_io.resize_shorter_side(style, defaults.PRETRAINED_STYLE_SIZE)))
            for style in styles]
    embeddings = [arbitrary.style_embedding(model, style[tf.newaxis]) for style in seen]
    masks = None if content_masks is None else [tf.convert_to_tensor(mask, tf.float32) for mask in content_masks]
    content = tf.convert_to_tensor(content, tf.float32)[tf.newaxis]
    return arbitrary.stylize_with_embeddings(model, content, embeddings, blend_weights, masks=masks)[0]


@dataclasses.dataclass(frozen=True)
class TemporalTarget:
    """A video frame's pull towards the previous frame's result (Ruder et al. 2016, §3.3), for transfer.

    Attributes:
      image: [H, W, 3] in [0, 255], the previous result warped into this frame (tf_nst.flow.warp), at the
        content's size.
      mask: [H, W] in [0, 1]: 1 where the flow is reliable (tf_nst.flow.reliability), 0 where the pull is off.
      weight: the weight of losses.temporal_loss, the "temporal" term.
    """

    image: np.ndarray
    mask: np.ndarray
    weight: float


def make_loss_fn(extractor, style_grams, content_features, loss_weights, temporal=None):
    """Returns loss_fn(images) -> (total, terms) for a fixed set of targets; a TemporalTarget adds its term."""

    def loss_fn(images):
        total, terms = losses.combined_loss(images, extractor(images), style_grams, content_features, loss_weights)
        if temporal is None:
            return total, terms
        term = temporal.weight * losses.temporal_loss(images, temporal.image, temporal.mask)
        return total + term, {**terms, "temporal": term}

    return loss_fn


def make_step(image, loss_fn, config):
    """The compiled optimisation step for `image` (a tf.Variable). Returns step() -> (total, terms)."""
    return _step_and_reset(image, loss_fn, config)[0]


def _step_and_reset(image, loss_fn, config):
    """(step, reset): make_step's step, and reset() that makes the optimiser forget what it learnt.

    Call reset after assigning a new problem to `image` (the next tile): the step's graph is kept.
    """

    def value_and_grad():
        with tf.GradientTape() as tape:
            tape.watch(image)
            total, terms = loss_fn(image)
        return total, terms, tape.gradient(total, image)

    if config.optimizer == "lbfgs":
        lbfgs = LBFGS(image, history=config.lbfgs_history, jit_compile=config.jit_compile)

        @tf.function(jit_compile=config.jit_compile)
        def step():
            return lbfgs.step(value_and_grad)

        return step, lbfgs.reset

    if config.optimizer == "adam":
        adam = keras.optimizers.Adam(learning_rate=config.learning_rate)
        adam.build([image])
        initial = [variable.numpy() for variable in adam.variables]  # iterations 0, moments 0, learning rate

        @tf.function(jit_compile=config.jit_compile)
        def step():
            total, terms, grad = value_and_grad()
            adam.apply_gradients([(grad, image)])
            image.assign(tf.clip_by_value(image, 0.0, 255.0))
            return total, terms

        def reset():
            for variable, value in zip(adam.variables, initial):
                variable.assign(value)

        return step, reset

    raise UserInputError(f"unknown optimizer {config.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def scale_tiles(size, config):
    """The tiles (tiling.Tile) that a scale of `size` (height, width) is optimised in; [] if it runs whole."""
    if not config.tile_size or max(size) <= config.tile_size:
        return []
    return tiling.tile_layout(*size, config.tile_size, config.tile_overlap)


def count_steps(height, width, config):
    """How many steps `transfer` takes (and reports to its callback) for a height x width content image; with
    num_scales="auto", give it resolve_num_scales's config, as `transfer` runs that."""
    return len(step_costs(height, width, config))


# A step's fixed cost, in pixels: what a step costs beyond the pixels it optimises (kernel launches, the L-BFGS
# bookkeeping, the deep layers' small maps). Fitted on the 2-core CPU's default run (512 px, 4 scales, 2026-12-01,
# with transfer's default style layers, block5_conv1 left out): in float32 a step took 16, 39, 133 and 513-525 ms
# at 64x43, 128x85, 256x171 and 512x341 px, within 2% of 2.90 us per (pixel + 2750); in mixed_bfloat16 with
# native bf16 instructions 12-13, 29, 85 and 302 ms, 1.69 us per (pixel + 4500): the coarsest and the full size
# within 4%, 128 px 11% over it. The time left's first line, read at the coarsest scale, rests on this fit (with
# every style layer in, it was 4000 and 6000).
STEP_OVERHEAD_PIXELS = 2750
BF16_STEP_OVERHEAD_PIXELS = 4500


def step_overhead_pixels(precision):
    """A step's fixed cost in pixels for a resolved precision (precision.resolve, not "auto"): mixed_bfloat16's,
    fitted with native bf16 instructions, or float32's (also used for mixed_float16, where no fit was made)."""
    if precision not in precision_lib.PRECISIONS:
        raise ValueError(f"step_overhead_pixels needs a resolved precision, one of {precision_lib.PRECISIONS}; "
                         f"received {precision!r}")
    return BF16_STEP_OVERHEAD_PIXELS if precision == "mixed_bfloat16" else STEP_OVERHEAD_PIXELS


def step_costs(height, width, config, overhead_pixels=STEP_OVERHEAD_PIXELS):
    """The relative cost of each step `transfer` plans for a height x width image, in order: the pixels it
    optimises (its scale's, or its tile's at a tiled scale) plus `overhead_pixels` (step_overhead_pixels of the
    precision), times the loss evaluations it makes. A step's time grows about with them, so a coarse scale's
    steps are cheap, and a time-left estimate weighs the steps still to come by them.

    An L-BFGS step evaluates the loss once, its trial point, which it nearly always accepts; the first step of
    each scale or tile also evaluates the start's gradient, so it counts twice. Without that, the time left on the
    first progress line, read from the first step alone, erred about 2x long."""
    first = 2.0 if config.optimizer == "lbfgs" else 1.0
    costs = []
    for num_steps, pieces in _planned_scales(height, width, config):
        for pixels in pieces:
            cost = float(pixels + overhead_pixels)
            costs.extend(cost * (first if step == 0 else 1.0) for step in range(num_steps))
    return costs


def scale_starts(height, width, config):
    """The number of steps `transfer` counts before each scale begins (0 for the first), coarse to fine: where
    a time-left estimate adds the scale's set-up (its targets computed, its step traced and warmed up). A scale
    that --tolerance ends early still hands on at its planned start (the count skips its remaining steps)."""
    starts, count = [], 0
    for num_steps, pieces in _planned_scales(height, width, config):
        starts.append(count)
        count += num_steps * len(pieces)
    return starts


def _planned_scales(height, width, config):
    """[(steps per piece, [pixels of each piece])] for each scale, coarse to fine: the pieces are its tiles, or
    the whole scale."""
    sizes = scale_sizes(height, width, config.num_scales, config.scale_factor)
    return [(_num_steps(config, final=index == len(sizes) - 1),
             [tile.height * tile.width for tile in scale_tiles(size, config)] or [size[0] * size[1]])
            for index, size in enumerate(sizes)]


def transfer(extractor, content, style, config, style_layers, content_layers, callback=None, tile_callback=None,
             should_stop=None, converged_callback=None, begin_callback=None, start=None, temporal=None):
    """Stylises `content` with one or more style images by optimising the pixels.

    With config.num_scales > 1 the optimisation runs coarse-to-fine: each scale starts from the previous
    scale's result, upsampled (plus the content's lost detail with config.content_detail), and style images are
    scaled by the same ratio as the content. Masks (config.content_masks, config.style_masks) are resized to the
    content's and each style's size at every scale. With config.tile_size, scales larger than a tile are
    optimised tile by tile (see TransferConfig).

    Args:
      extractor: the model from vgg.build_extractor, exposing every style and content layer.
      content: [H, W, 3] content image in [0, 255] (uint8 or float).
      style: one [H', W', 3] style image in [0, 255], or a list of them (see config.style_blend_weights).
      config: a TransferConfig.
      style_layers, content_layers: the layers the loss uses.
      callback: optional callback(step, terms, image) called after every step, where step counts across
        scales and tiles out of count_steps in all; when config.tolerance ends a scale or tile early, the count
        skips the rest of its planned steps (the next one starts where they would have ended), terms is a dict of
        float32 scalar tensors ("total", "content", "style", "tv") and image the tf.Variable being optimised:
        [1, h, w, 3], the whole image or, at a tiled scale, the current tile. Reading the tensors costs a
        device sync, so a callback should read them only when it reports.
      tile_callback: optional tile_callback(index, num_tiles) called before each tile of a tiled scale is
        optimised; index counts from 1 within the scale.
      should_stop: optional should_stop() -> bool asked after every step; True ends the run there.
      converged_callback: optional converged_callback(step, convergence) called when config.tolerance ends a
        scale or tile early, just before the step's callback; convergence is the progress.Convergence that stopped it
        (its improvement, tolerance and window).
      begin_callback: optional begin_callback(step, num_steps) called when a scale or tile is ready, just
        before its first step: its targets computed and its step traced and warmed up (_warm_up), so the time
        from here to the step's callback is one step's. step is the count of steps before it, num_steps the
        steps planned for it.
      start: optional [H, W, 3] image in [0, 255] to start from instead of config.init (a video frame starts
        from the previous result warped; resized to the coarsest scale).
      temporal: optional TemporalTarget: its term joins the loss at the finest scale (not with tiles).

    Returns:
      The stylised image, [H, W, 3] uint8.

    Raises:
      TransferStopped: should_stop() said stop, or the loss or image became non-finite; its `image` is the
        best image so far (the last finite one), finished as a full run's result is.
    """
    config = resolve_loss_weights(config, style_layers)
    style_layers = losses.used_style_layers(style_layers, config.loss_weights)  # a layer of weight 0 never runs
    if not style_layers:
        raise UserInputError("every style layer has weight 0; give at least one a positive weight")
    original = tf.convert_to_tensor(content, tf.float32)
    content, styles = _prepare_colors(original, style_targets.as_image_list(style), config)
    style_shapes = [image.shape for image in styles]
    config = resolve_num_scales(config, content.shape, style_shapes, [*style_layers, *content_layers])
    check_sizes(content.shape, style_shapes, config, [*style_layers, *content_layers])
    _check_masks(config, len(styles))
    if config.tile_size:
        tiling.check_tiling(config.tile_size, config.tile_overlap)
        if temporal is not None:
            raise UserInputError("a temporal term (video) cannot be optimised in tiles; give no tile_size")
    _check_tolerance(config)
    convergence = None
    if config.tolerance > 0:
        convergence = lambda: progress_lib.Convergence(config.tolerance, config.tolerance_window)  # noqa: E731
    progress = progress_lib.Progress(callback, tile_callback, should_stop, convergence, converged_callback,
                                     begin_callback)
    try:
        image = _run_scales(extractor, content, styles, config, (style_layers, content_layers), progress, start,
                            temporal)
    except TransferStopped as e:
        partial = e.partial if e.partial is not None else progress.last_good
        if tuple(partial.shape[1:3]) != tuple(content.shape[:2]):  # stopped at a coarser scale
            partial = _upsampled(partial, content, config)  # as the next scale would have started
        e.image = _finish(partial, original, config)
        raise
    return _finish(image, original, config)


def _run_scales(extractor, content, styles, config, layers, progress, first_start=None, temporal=None):
    """Optimises every scale, coarse to fine, the first from `first_start` if given; returns the final
    [1, H, W, 3] image."""
    image = None
    sizes = scale_sizes(*content.shape[:2], config.num_scales, config.scale_factor)
    for index, size in enumerate(sizes):
        final = index == len(sizes) - 1
        scale = _scale(content, styles, config, size, final)
        if image is not None:
            start = _upsampled(image, scale.content, config)
        elif first_start is not None:
            start = tf.convert_to_tensor(first_start, tf.float32)
            start = (start if tuple(start.shape[:2]) == tuple(size) else image_io.resize(start, size))[None]
        else:
            start = initial_image(config.init, scale.content, scale.styles, config.seed, config.style_blend_weights,
                                  scale.content_masks)
        tiles = scale_tiles(size, config)
        image = (_optimize_tiles(extractor, start, scale, tiles, config, layers, progress) if tiles
                 else _optimize_whole(extractor, start, scale, config, layers, progress,
                                      temporal if final else None))
    return image


def _upsampled(image, content, config):
    """The coarser result `image` ([1, h, w, 3]) resized to `content`'s size, plus the content's detail that the
    coarser size lost when config.content_detail is set."""
    size = content.shape[:2]
    start = image_io.resize(image, size)
    if not config.content_detail:
        return start
    detail = content - image_io.resize(image_io.resize(content, image.shape[1:3]), size)
    return tf.clip_by_value(start + detail[None], 0.0, 255.0)


def _finish(image, original, config):
    """[1, H, W, 3] float -> the [H, W, 3] uint8 result, with the content's colours kept if asked."""
    result = image[0]
    if config.preserve_color == "luminance":
        result = image_io.keep_content_colors(result, original)
    return np.asarray(image_io.to_uint8(result))


@dataclasses.dataclass(frozen=True)
class _Scale:
    """One scale of a coarse-to-fine run: the images and masks at its size, and its number of steps."""

    content: tf.Tensor
    styles: list
    content_masks: list
    style_masks: list
    num_steps: int


def _scale(content, styles, config, size, final):
    ratio = size[0] / int(content.shape[0])
    scaled_content = content if final else image_io.resize(content, size)
    scaled_styles = [s if ratio == 1 else image_io.resize(s, _scaled(s.shape, ratio)) for s in styles]
    content_masks, style_masks = _scaled_masks(config, size, scaled_styles)
    return _Scale(scaled_content, scaled_styles, content_masks, style_masks, _num_steps(config, final))


def _num_steps(config, final):
    if final or config.coarse_steps is None:
        return config.num_steps
    return config.coarse_steps


def _optimize_whole(extractor, start, scale, config, layers, progress, temporal=None):
    """Optimises a whole scale from `start` ([1, h, w, 3]), with a TemporalTarget's term if given; returns the
    tf.Variable."""
    style_layers, content_layers = layers
    style_grams, content_features = style_targets.compute_targets(
        extractor, scale.content, scale.styles, style_layers, content_layers, config.style_blend_weights,
        scale.content_masks, scale.style_masks, piece_size=config.tile_size or None)
    image = tf.Variable(start, name="image")
    step, reset = _step_and_reset(
        image, make_loss_fn(extractor, style_grams, content_features, config.loss_weights, temporal), config)
    _warm_up(step, reset, image)
    progress.begin(start, scale.num_steps)
    for _ in range(scale.num_steps):
        if progress.step(*step(), image):
            break
    return image


def _optimize_tiles(extractor, start, scale, tiles, config, layers, progress):
    """Optimises a scale from `start` ([1, H, W, 3]) tile by tile; returns a [1, H, W, 3] NumPy array.

    The whole image stays a NumPy array; VGG and the optimiser only ever see a tile. Each tile starts from
    the current image (earlier tiles blended in, so neighbours agree where they overlap), is optimised
    against its own content crop and the whole style images' targets, and is blended back
    (tiling.blend_into).
    """
    style_layers, _ = layers
    per_style, weights = style_targets.per_style_grams(
        extractor, scale.styles, style_layers, config.style_blend_weights, scale.style_masks, config.tile_size)
    base = np.asarray(start[0], np.float32)
    image = base.copy()
    content = np.asarray(scale.content, np.float32)
    masks = None if scale.content_masks is None else [np.asarray(mask) for mask in scale.content_masks]
    optimizer = _TileOptimizer(extractor, per_style, weights, (tiles[0].height, tiles[0].width), config, layers,
                               guided=masks is not None)
    for index, tile in enumerate(tiles, start=1):
        progress.tile(index, len(tiles))
        optimizer.start(image[tile.window], content[tile.window],
                        None if masks is None else [mask[tile.window] for mask in masks])
        if index == 1:  # one traced step serves every tile
            _warm_up(optimizer.step, optimizer.reset, optimizer.image)
        progress.begin(optimizer.image, scale.num_steps)
        try:
            for _ in range(scale.num_steps):
                if progress.step(*optimizer.step(), optimizer.image):
                    break
        except TransferStopped as e:
            tiling.blend_into(image, base, progress.last_good[0], tile)  # the tile as far as it got
            e.partial = image[None]
            raise
        tiling.blend_into(image, base, optimizer.image[0].numpy(), tile)
    return image[None]


class _TileOptimizer:
    """Optimises tiles of one shape, one after another, with one traced step.

    A tf.function traces anew for every new function, so a step built per tile would trace per tile; here the
    tile's pixels, its content targets and (with spatial control) its content masks live in variables of the
    tile's shape that `start` overwrites, and the optimiser's state is reset instead of rebuilt.
    """

    def __init__(self, extractor, per_style, blend_weights, shape, config, layers, guided):
        style_layers, content_layers = layers
        self._extractor = extractor
        shapes = {name: features.shape for name, features in extractor(tf.zeros([1, *shape, 3])).items()}
        zeros = lambda dims: tf.Variable(tf.zeros(dims), trainable=False)
        self.image = tf.Variable(tf.zeros([1, *shape, 3]), name="tile")
        self._content = {name: zeros(shapes[name]) for name in content_layers}
        self._masks = None
        if guided:
            self._masks = {name: [zeros(shapes[name][1:3]) for _ in per_style] for name in style_layers}
        targets = style_targets.combine_targets(per_style, blend_weights, style_layers, self._masks)
        loss_fn = make_loss_fn(extractor, targets, self._content, config.loss_weights)
        self.step, self.reset = _step_and_reset(self.image, loss_fn, config)

    def start(self, pixels, content, content_masks=None):
        """Makes [h, w, 3] `pixels` the tile to optimise, against `content` and `content_masks` crops."""
        self.image.assign(pixels[None])
        features = self._extractor(tf.convert_to_tensor(content)[None])
        for name, target in self._content.items():
            target.assign(features[name])
        if self._masks is not None:
            for layer_masks in self._masks.values():
                for variable, mask in zip(layer_masks, content_masks):
                    variable.assign(image_io.pool_mask(mask, variable.shape))
        self.reset()


def _warm_up(step, reset, image):
    """Runs `step` once and undoes it: the image back where it was, the optimiser's state forgotten.

    A step's first call traces it and lets TensorFlow optimise the graph: at 256 px on the 2-core CPU, 2.0 s of
    tracing and a 1.9 s first call against 0.65 s for the next ones. Paid here, that is not in the first step's
    time, from which the progress line's time left is first estimated. The run is then what it would have been
    without it; it costs one more step per scale (per tiled scale: once for all its tiles).
    """
    start = tf.identity(image)
    step()
    image.assign(start)
    reset()


def _check_tolerance(config):
    """Raises UserInputError unless the tolerance is a finite number >= 0 and the window at least 1 step."""
    if not (isinstance(config.tolerance, (int, float)) and np.isfinite(config.tolerance) and config.tolerance >= 0):
        raise UserInputError(f"tolerance={config.tolerance!r} is not valid; use a fraction >= 0 (0: run every step)")
    if not (isinstance(config.tolerance_window, int) and config.tolerance_window >= 1):
        raise UserInputError(f"tolerance_window={config.tolerance_window!r} is not valid; use a whole number of "
                             "steps >= 1")


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
