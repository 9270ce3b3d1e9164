"""The one minimum-size rule, as arithmetic on sizes: the smallest input of the VGG layers a loss uses, the
coarse-to-fine scales, and the content and styles checked at the coarsest of them after resizing. No
TensorFlow, so that `transfer` refuses a too-small image before TensorFlow loads."""

import dataclasses
import re

import numpy as np

from tf_nst import defaults
from tf_nst.errors import UserInputError

# transfer's --init that starts from the pretrained network's picture (optimize.pretrained_start), and the one
# that picks it where that network is installed (resolve_init).
PRETRAINED_INIT = "pretrained"
AUTO_INIT = "auto"

LAYER_NAME = re.compile(r"block(\d)_(?:conv(\d)|pool)$")


def min_input_size(layers):
    """The smallest image side (pixels) that leaves every requested layer at least 1x1."""
    pools = 0
    for name in layers:
        block, conv = LAYER_NAME.match(name).groups()
        pools = max(pools, int(block) - 1 + (conv is None))
    return 2 ** pools


def scaled_size(height, width, max_side):
    """The (height, width) that makes the longer side `max_side`, keeping the aspect ratio."""
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def transfer_layer_weights(style_layers, layer_weights=None):
    """The style layer weights per-image transfer uses: `layer_weights` if given; else, on the default
    style_layers (defaults.STYLE_LAYERS), the tuned ones (defaults.TRANSFER_STYLE_LAYER_WEIGHTS: block5_conv1 at
    0); else None (1 each)."""
    if not layer_weights and tuple(style_layers) == defaults.STYLE_LAYERS:
        return defaults.TRANSFER_STYLE_LAYER_WEIGHTS
    return layer_weights or None


def used_transfer_layers(style_layers, content_layers, layer_weights=None):
    """Every layer per-image transfer's loss computes: the style layers of weight > 0 (transfer_layer_weights),
    then the content layers."""
    weights = transfer_layer_weights(style_layers, layer_weights)
    used = [name for index, name in enumerate(style_layers) if weights is None or float(weights[index]) != 0]
    return (*used, *content_layers)


def auto_num_scales(height, width, scale_factor, smallest_side=None, min_side=1):
    """num_scales="auto": scales of `scale_factor` from the full size down to about defaults.AUTO_SCALE_SIZE px
    (longer side), as long as the shorter side stays at least defaults.AUTO_MIN_SIDE px: with factor 2, 1 scale
    up to 90 px, 3 at 256 px, 4 at 512 px, 5 at 1024 px.

    smallest_side, min_side: the smallest side of any image that shrinks with the content (the styles), which
    must stay at least min_side px (the layers' smallest input) at the coarsest scale.
    """
    levels = np.log(max(height, width) / defaults.AUTO_SCALE_SIZE) / np.log(scale_factor)
    fitting = np.log(min(height, width) / defaults.AUTO_MIN_SIDE) / np.log(scale_factor)
    number = 1 + max(0, min(int(np.floor(levels + 0.5)), int(np.floor(fitting))))
    while number > 1 and smallest_side is not None:
        ratio = scale_sizes(height, width, number, scale_factor)[0][0] / height  # as the scales resize
        if smallest_side * ratio >= min_side:
            break
        number -= 1
    return number


def resolve_init(config):
    """The config with init "auto" resolved (defaults.INIT): "pretrained" where the pretrained arbitrary network
    can be loaded (pretrained.loadable) and the run is not tiled, else "noise". Any other init comes back
    unchanged."""
    if config.init != AUTO_INIT:
        return config
    from tf_nst import pretrained  # pylint: disable=import-outside-toplevel  (no TensorFlow either)

    usable = not config.tile_size and pretrained.loadable(pretrained.ARBITRARY)
    return dataclasses.replace(config, init=PRETRAINED_INIT if usable else "noise")


def resolve_num_scales(config, content_shape, style_shapes, layers):
    """The config with init "auto" resolved (resolve_init), and num_scales="auto" resolved to the number of scales
    `transfer` runs: auto_num_scales, less any coarse scale at which the content or a style (the styles shrink with
    the content) would be smaller than the layers' smallest input (min_input_size). count_steps and step_costs
    given the result plan what `transfer` does; a config with a number of scales keeps it.

    Args:
      config: a TransferConfig.
      content_shape, style_shapes: the content's [H, W, ...] shape and a list of the styles'.
      layers: every style and content layer the loss uses.
    """
    config = resolve_init(config)
    if config.num_scales != "auto":
        return config
    if config.init == PRETRAINED_INIT:  # the one-pass picture is a full-size start: one scale arrived soonest
        return dataclasses.replace(config, num_scales=1)  # (BENCHMARKS.md, "Starting from the pretrained network")
    smallest = min(min(shape[:2]) for shape in [content_shape, *style_shapes])
    return dataclasses.replace(config, num_scales=auto_num_scales(
        *content_shape[:2], config.scale_factor, smallest_side=smallest, min_side=min_input_size(layers)))


def check_sizes(content_shape, style_shapes, config, layers, names=None, context=""):
    """Refuses a content or style image that would be smaller than the layers' smallest input
    (min_input_size) at the coarsest scale; styles shrink with the content there.

    Args:
      content_shape, style_shapes: the content's [H, W, ...] shape and a list of the styles', as `transfer` gets
        them.
      config: a TransferConfig whose num_scales is a number (resolve_num_scales).
      layers: every style and content layer the loss uses.
      names: optional, the content's and each style's file name, for the message.
      context: optional words for the message after the size, e.g. " (image_size=512)".

    Raises:
      UserInputError: naming the image, its size at the coarsest scale and the size the layers need.
    """
    min_side = min_input_size(layers)
    coarsest = scale_sizes(*content_shape[:2], config.num_scales, config.scale_factor)[0]
    ratio = coarsest[0] / content_shape[0]
    names = names or [""] * (1 + len(style_shapes))
    kinds = ["content"] + ["style"] * len(style_shapes)
    for kind, name, shape in zip(kinds, names, [content_shape, *style_shapes]):
        height, width = shape[0] * ratio, shape[1] * ratio
        if min(height, width) < min_side:
            label = f"{kind} image {name!r}" if name else f"the {kind} image"
            where = "" if config.num_scales == 1 else f" at the coarsest of {config.num_scales} scales"
            raise UserInputError(
                f"{label} becomes {width:.0f}x{height:.0f} px{where}{context}; the chosen layers need at least "
                f"{min_side} px on each side")


def scale_sizes(height, width, num_scales, scale_factor):
    """[(height, width)] from the coarsest scale to the full size (the last entry); num_scales may be "auto"."""
    if num_scales == "auto":
        num_scales = auto_num_scales(height, width, scale_factor)
    if not (isinstance(num_scales, (int, np.integer)) and num_scales >= 1):
        raise UserInputError(f"num_scales={num_scales!r} is not valid; use 'auto' or a whole number >= 1")
    sizes = []
    for level in reversed(range(num_scales)):
        ratio = scale_factor ** -level
        sizes.append((max(1, round(height * ratio)), max(1, round(width * ratio))))
    return sizes


def sized_config(shapes, image_size, style_scale, config, layers, names=None):
    """`config` with num_scales "auto" resolved (resolve_num_scales), for images of [(height, width)] `shapes`
    (the content's, then the styles') resized as `transfer` resizes them: the content's longer side to
    image_size, each style's to style_scale * image_size.

    Raises:
      UserInputError: an image too small for the layers at the coarsest scale (check_sizes); the message names
        the smallest image_size that works, where one does.
    """
    try:
        return _checked_sizes(shapes, image_size, style_scale, config, layers, names)
    except UserInputError as e:
        smallest = next((size for size in range(image_size + 1, defaults.MAX_IMAGE_SIZE + 1)
                         if _fits(shapes, size, style_scale, config, layers)), None)
        fewer = " (or fewer --num_scales)" if config.num_scales != "auto" and config.num_scales > 1 else ""
        advice = (f"; --image_size={smallest} is the smallest that works{fewer}" if smallest
                  else "; use fewer --num_scales or larger images")
        raise UserInputError(f"{e}{advice}") from None


def _checked_sizes(shapes, image_size, style_scale, config, layers, names):
    content = scaled_size(*shapes[0], image_size)
    styles = [scaled_size(*shape, max(1, round(style_scale * image_size))) for shape in shapes[1:]]
    config = resolve_num_scales(config, content, styles, layers)
    check_sizes(content, styles, config, layers, names, context=f" (image_size={image_size}, style_scale applied)")
    return config


def _fits(shapes, image_size, style_scale, config, layers):
    try:
        _checked_sizes(shapes, image_size, style_scale, config, layers, None)
    except UserInputError:
        return False
    return True
