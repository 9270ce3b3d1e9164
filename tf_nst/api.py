"""The Python API in the style of Keras: `transfer(content, style, **options)` and `load_stylizer(path)`.

Thin layers over vgg, optimize and stylize, with the command line's defaults (tf_nst.defaults). `import tf_nst`
exposes both without importing TensorFlow; this module imports it.
"""

import dataclasses
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_nst import arbitrary as arbitrary_lib
from tf_nst import defaults
from tf_nst import files
from tf_nst import image_io
from tf_nst import losses
from tf_nst import sizes
from tf_nst import optimize
from tf_nst import pretrained
from tf_nst import stylize
from tf_nst import vgg
from tf_nst.errors import UserInputError

# transfer()'s options that are not TransferConfig or ExtractorConfig fields.
_LOSS_OPTIONS = ("content_weight", "style_weight", "tv_weight", "style_layer_weights")
_EXTRACTOR_OPTIONS = tuple(field.name for field in dataclasses.fields(vgg.ExtractorConfig))
_TRANSFER_OPTIONS = tuple(field.name for field in dataclasses.fields(optimize.TransferConfig)
                          if field.name != "loss_weights")


def as_image(image, name="image"):
    """A path, a PIL image or an array in [0, 255] -> an [H, W, 3] array (uint8 or float).

    An array is [H, W, 3], or grey [H, W] or [H, W, 1] (its one channel repeated, as a grey file is read); of
    dtype uint8, another integer type, or float; with finite values in [0, 255] and at least
    files.MIN_IMAGE_SIDE px on each side.

    Raises:
      UserInputError: anything else; the message quotes what was received and says what is valid.
    """
    if isinstance(image, (str, os.PathLike)):
        return files.read_image(os.fspath(image))
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        array = files.pil_to_rgb(image)
        files.check_min_side(f"{name} image", array.shape[1], array.shape[0])
        return array
    array = np.asarray(image)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 1):
        array = np.repeat(array.reshape(array.shape[:2])[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise UserInputError(f"{name} must be a path, a PIL image or an [height, width, 3] array in [0, 255] "
                             f"(or a grey [height, width] one); received an array of shape {array.shape}")
    check_pixels(array, name)
    files.check_min_side(f"{name} array", array.shape[1], array.shape[0])
    return array


def check_pixels(array, name="image"):
    """Refuses an image array whose dtype or values are not an image's: only uint8, integers or floats, finite
    and in [0, 255] (a NaN came out as a black picture; bool and complex were cast silently)."""
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise UserInputError(f"{name} has dtype {array.dtype}; give uint8, or float values in [0, 255]")
    if array.dtype == np.uint8 or not array.size:
        return
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise UserInputError(f"{name} has non-finite values (nan or inf); give finite values in [0, 255]")
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise UserInputError(f"{name} has values from {low:g} to {high:g}; give values in [0, 255]")


# Bounds of transfer()'s numeric options, as the command line's flags: {name: (kind, least, most)}; "int" is a
# whole number in [least, most], "float" a finite number >= least (> least where least is an open bound: see
# _OPEN), at most `most`.
_NUMBERS = {
    "image_size": ("int", 16, defaults.MAX_IMAGE_SIZE), "num_steps": ("int", 1, defaults.MAX_STEPS),
    "coarse_steps": ("int", 1, defaults.MAX_STEPS), "lbfgs_history": ("int", 1, defaults.MAX_LBFGS_HISTORY),
    "seed": ("int", 0, defaults.MAX_SEED), "tile_size": ("int", 0, defaults.MAX_IMAGE_SIZE),
    "tile_overlap": ("int", 0, defaults.MAX_IMAGE_SIZE), "tolerance_window": ("int", 1, defaults.MAX_STEPS),
    "style_scale": ("float", 0.01, defaults.MAX_STYLE_SCALE), "learning_rate": ("float", 0.0, None),
    "scale_factor": ("float", 1.0, None), "tolerance": ("float", 0.0, None),
    "content_weight": ("float", 0.0, None), "style_weight": ("float", 0.0, None), "tv_weight": ("float", 0.0, None),
}
_OPEN = ("learning_rate", "scale_factor")
_WEIGHT_LISTS = ("style_layer_weights", "style_blend_weights")


def _check_numbers(options):
    """UserInputError for a numeric option of the wrong type or out of its bounds (None keeps a default)."""
    for name, value in options.items():
        if value is None:
            continue
        if name in _NUMBERS:
            _check_number(name, value, *_NUMBERS[name])
        elif name in _WEIGHT_LISTS:
            if not isinstance(value, (list, tuple)) or not all(_is_weight(w) for w in value):
                raise UserInputError(f"{name}={value!r} is not valid; give a list of finite numbers >= 0")
        elif name.endswith("_layers") and (isinstance(value, str) or not isinstance(value, (list, tuple))
                                           or not all(isinstance(layer, str) for layer in value)):
            raise UserInputError(f"{name}={value!r} is not valid; give a list of layer names, such as "
                                 f"{list(getattr(vgg.ExtractorConfig(), name))}")


def _check_number(name, value, kind, least, most):
    if kind == "int":
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not least <= value <= most:
            raise UserInputError(f"{name}={value!r} is not valid; give a whole number from {least} to {most}")
        return
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not number or not np.isfinite(value) or value < least or (name in _OPEN and value == least) or (
            most is not None and value > most):
        valid = (f"a number from {least:g} to {most:g}" if most is not None
                 else f"a finite number {'>' if name in _OPEN else '>='} {least:g}")
        raise UserInputError(f"{name}={value!r} is not valid; give {valid}")


def _is_weight(value):
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and value >= 0)


def read_style_images(style, style_size=stylize.DEFAULT_STYLE_SIZE):
    """A style or a list of them (paths, PIL images or arrays) -> uint8 [H, W, 3] arrays, each resized so that
    its shorter side is `style_size`."""
    styles = style if isinstance(style, (list, tuple)) else [style]
    return tuple(np.asarray(image_io.to_uint8(image_io.resize_shorter_side(as_image(s, "style"), style_size)))
                 for s in styles)


def _split_options(options):
    """(ExtractorConfig, TransferConfig kwargs without loss_weights, LossWeights) from transfer()'s options."""
    known = tuple(dict.fromkeys(_EXTRACTOR_OPTIONS + _TRANSFER_OPTIONS + _LOSS_OPTIONS))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UserInputError(f"unknown option(s) {', '.join(unknown)}; valid options are {', '.join(known)}")
    _check_numbers(options)
    # The command line's precision ("auto"), where ExtractorConfig's own default stays float32 for training.
    extractor = vgg.ExtractorConfig(**{"precision": defaults.PRECISION,
                                       **{k: tuple(v) if k.endswith("_layers") else v
                                          for k, v in options.items() if k in _EXTRACTOR_OPTIONS}})
    given = options.get("style_layer_weights")
    if given and len(given) != len(extractor.style_layers):
        raise UserInputError(f"style_layer_weights has {len(given)} entries for "
                             f"{len(extractor.style_layers)} style layers; give one per layer")
    loss_weights = optimize.transfer_loss_weights(
        extractor.style_layers, options.get("content_weight"), options.get("style_weight"), options.get("tv_weight"),
        given)
    return extractor, {k: v for k, v in options.items() if k in _TRANSFER_OPTIONS}, loss_weights


def sized_images(content, styles, image_size, style_scale, extractor_config, config, names=None):
    """(content, styles, config) resized for optimize.transfer, checked against the chosen layers' smallest input.

    The content's longer side becomes image_size and each style's style_scale * image_size, as the command
    line does. The config comes back with num_scales="auto" resolved to a number, one that leaves out any
    coarse scale at which an image (the styles shrink with the content) would be too small for the layers that
    the loss uses (not those at weight 0).

    Args:
      content, styles: an [H, W, 3] image and a list of them, in [0, 255].
      image_size, style_scale: the sizes above.
      extractor_config, config: the vgg.ExtractorConfig (its layers) and the optimize.TransferConfig (its scales).
      names: optional, the content's and each style's file name, for the error message.

    Raises:
      UserInputError: an image too small for the layers at the coarsest scale; the message names the smallest
        image_size that works, where one does.
    """
    # The layers the loss uses, as optimize.transfer runs them: a style layer of weight 0 sets no smallest input
    # (the extractor is built without it, extractor_for_loss).
    config = optimize.resolve_loss_weights(config, extractor_config.style_layers)
    layers = (*losses.used_style_layers(extractor_config.style_layers, config.loss_weights),
              *extractor_config.content_layers)
    shapes = [(*content.shape[:2],), *((*style.shape[:2],) for style in styles)]
    sized_config = sizes.sized_config(shapes, image_size, style_scale, config, layers, names)
    content = image_io.resize_max_side(content, image_size)
    styles = [image_io.resize_max_side(style, max(1, round(style_scale * image_size))) for style in styles]
    return content, styles, sized_config


def extractor_for_loss(extractor_config, config):
    """`extractor_config` with only the style layers whose weight in `config` (as sized_images returns it) is
    not 0: such a layer is never computed, so it neither sets the smallest input (block5 would need 16 px on
    each side where block4 needs 8) nor costs time."""
    config = optimize.resolve_loss_weights(config, extractor_config.style_layers)
    return dataclasses.replace(
        extractor_config, style_layers=losses.used_style_layers(extractor_config.style_layers, config.loss_weights))


class _Reporter:
    """transfer()'s per-step hook: with verbose=1 a keras.utils.Progbar on a terminal, else (a log file, a pipe)
    plain lines, one per PLAIN_LINES-th of the run; and the user's callbacks(step, terms)."""

    PLAIN_LINES = 10

    def __init__(self, num_steps, verbose, callbacks, stream=None):
        self._callbacks = list(callbacks or ())
        self._stream = stream or sys.stdout
        self._plain = bool(verbose) and not _is_terminal(self._stream)  # a Progbar writes \r, \b and colours
        self._num_steps = num_steps
        self._every = max(1, num_steps // self.PLAIN_LINES)
        self._progbar = keras.utils.Progbar(
            num_steps, verbose=verbose, stateful_metrics=("total", "content", "style", "tv")
        ) if verbose and not self._plain else None
        self._last = None  # the latest step shown
        self._unprinted = None  # plain lines: (step, terms) of the latest step, when its line was not printed

    def __call__(self, step, terms, image):  # pylint: disable=unused-argument
        plain = self._plain and (step == 1 or step % self._every == 0 or step == self._num_steps)
        if not self._callbacks and self._progbar is None and not plain:
            return  # reading the terms costs a device sync
        values = {name: float(value) for name, value in terms.items()}
        for callback in self._callbacks:
            callback(step, values)
        if self._plain:
            self._unprinted = None if plain else (step, values)
        if plain:
            self._print_line(step, values)
        if self._progbar is not None:
            self._progbar.update(step, list(values.items()), finalize=None)
            self._last = step

    def _print_line(self, step, values):
        text = "  ".join(f"{name} {value:.4g}" for name, value in values.items())
        print(f"step {step:>{len(str(self._num_steps))}}/{self._num_steps}  {text}", file=self._stream, flush=True)

    def finish(self):
        """Ends the progress bar's line (or prints the last plain one) when `tolerance` stopped the run before its
        last step."""
        if self._unprinted is not None:
            self._print_line(*self._unprinted)
        if self._progbar is not None and self._last is not None and self._last < self._progbar.target:
            self._progbar.update(self._last, finalize=True)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def transfer(content, style, *, image_size=defaults.IMAGE_SIZE, style_scale=1.0, verbose=0, callbacks=None,
             **options):
    """Stylises `content` with `style` by optimising its pixels (Gatys et al. 2016), as `main.py transfer`.

    Args:
      content: a path, a PIL image or an [H, W, 3] array in [0, 255].
      style: the same, or a list of them to blend (`style_blend_weights`).
      image_size: the result's longer side, in pixels.
      style_scale: style images are resized to style_scale * image_size.
      verbose: 1 shows a keras.utils.Progbar with the loss terms on a terminal, plain lines (the first step, every
        tenth of the run and the last) where stdout is not one; 0 is silent.
      callbacks: functions called as callback(step, terms) after every step, terms {name: float}.
      **options: any field of optimize.TransferConfig (num_steps, optimizer, learning_rate, tolerance, init,
        seed, num_scales, preserve_color, content_masks, tile_size, ...) or vgg.ExtractorConfig (backbone, weights,
        style_layers, content_layers, pooling, precision), and content_weight, style_weight, tv_weight,
        style_layer_weights. Defaults are the command line's.

    Returns:
      The stylised image, uint8 [H, W, 3].

    Raises:
      UserInputError: an unknown option, an unreadable image, or an image too small for the layers.
      optimize.TransferStopped: the loss became non-finite; its `step` says where and its `image` is the
        last finite image.
    """
    _check_numbers({"image_size": image_size, "style_scale": style_scale})
    if style_scale * image_size > defaults.MAX_IMAGE_SIZE:
        raise UserInputError(f"style_scale={style_scale!r} at image_size={image_size} makes the style images "
                             f"{round(style_scale * image_size)} px on their longer side; it can be at most "
                             f"{defaults.MAX_IMAGE_SIZE} px")
    extractor_config, transfer_options, loss_weights = _split_options(options)
    config = optimize.TransferConfig(loss_weights=loss_weights, **transfer_options)
    styles = [as_image(s, "style") for s in (style if isinstance(style, (list, tuple)) else [style])]
    content, styles, config = sized_images(as_image(content, "content"), styles, image_size, style_scale,
                                           extractor_config, config)
    reporter = _Reporter(optimize.count_steps(*content.shape[:2], config), verbose, callbacks)
    extractor = vgg.build_extractor(extractor_for_loss(extractor_config, config))
    image = optimize.transfer(extractor, content, styles, config, extractor_config.style_layers,
                              extractor_config.content_layers, callback=reporter)
    reporter.finish()
    return image


class Stylizer:
    """A trained stylizer as a function: uint8 images in, uint8 stylised images out.

    Call it on one [H, W, 3] image or a batch [N, H, W, 3]. `style=` (a path, PIL image or array, or a list
    of them), with `alpha`, `style_blend_weights`, `preserve_color` and `style_size` (default
    tf_nst.defaults.STYLE_SIZE), is for arbitrary-style models, which require it; a model that learnt one style
    refuses it. An exported arbitrary-style SavedModel resizes styles by the --style_size it was exported with
    (style_size= is refused) and takes preserve_color "luminance" with one style only.
    """

    def __init__(self, forward, path, model=None, exported=None):
        self._forward = forward  # float32 [N, H, W, 3] in [0, 255] -> float [N, H, W, 3] in [0, 255]
        self._model = model  # the Keras model, when loaded from one
        self._exported = exported  # an arbitrary-style export, as tf.saved_model.load gives it
        self.path = path

    def __call__(self, images, style=None, *, alpha=1.0, style_blend_weights=None, preserve_color="none",
                 style_size=None):
        if self._model is not None and arbitrary_lib.is_multistyle(self._model):
            return self._call_builtin(images, style, preserve_color)
        arbitrary = self._exported is not None or (self._model is not None and arbitrary_lib.is_arbitrary(self._model))
        if style is not None and not arbitrary:
            raise UserInputError(f"the stylizer {self.path!r} learnt one style and takes no style=; "
                                 "style= is for arbitrary-style models")
        if arbitrary and style is None:
            raise UserInputError(f"the stylizer {self.path!r} is an arbitrary-style network; give it style=")
        images = np.asarray(images)
        single = images.ndim == 3
        batch = _as_batch(images)
        check_pixels(batch, "image" if single else "image batch")
        weights = tuple(style_blend_weights) if style_blend_weights is not None else None
        if self._exported is not None:
            styles = style if isinstance(style, (list, tuple)) else [style]
            options = stylize.Style(tuple(as_image(s, "style") for s in styles), weights, alpha, preserve_color)
            output = np.stack(self._stylize_exported(batch, options, style_size))
        elif arbitrary:
            size = style_size or arbitrary_lib.default_style_size(self._model)
            options = stylize.Style(read_style_images(style, size), weights, alpha, preserve_color)
            output = np.stack([stylize.stylize_image(self._model, image, style=options) for image in batch])
        else:
            output = np.asarray(image_io.to_uint8(self._forward(tf.convert_to_tensor(batch, tf.float32))))
        return output[0] if single else output

    def _call_builtin(self, images, builtin_style, preserve_color):
        """The 26-style network: `style=` is a built-in index, "3:0.5,12:0.5", or 26 weights."""
        if builtin_style is None:
            raise UserInputError(f"the stylizer {self.path!r} is the 26-style network; give it style=7 (an index "
                                 "0-25), style='3:0.5,12:0.5' or 26 weights")
        if isinstance(builtin_style, (int, str)):
            weights = stylize.builtin_weights(builtin_style)
        else:
            weights = tuple(float(w) for w in builtin_style)
            total = sum(weights)
            weights = tuple(w / total for w in weights) if total > 0 else weights
        options = stylize.BuiltinStyle(weights, preserve_color)
        batch = _as_batch(images)
        check_pixels(batch, "image" if np.asarray(images).ndim == 3 else "image batch")
        output = np.stack([stylize.stylize_image(self._model, image, style=options) for image in batch])
        return output[0] if np.asarray(images).ndim == 3 else output

    def _stylize_exported(self, batch, style, style_size):
        """An exported arbitrary-style model's outputs, through its signatures (export/signatures.py): the
        styles' statistics once, blended, for every image; with "luminance", the style image with each."""
        from export import signatures  # pylint: disable=import-outside-toplevel

        if style_size is not None:
            raise UserInputError(f"{self.path!r} is an exported arbitrary-style model: it resizes each style by "
                                 f"the --style_size it was exported with; leave style_size unset (received "
                                 f"{style_size})")
        signatures.check_options(style, f"{self.path!r} is an exported arbitrary-style model, which",
                                 hint=": load its .keras file for that")
        statistics = signatures.shared_statistics(self._exported, style)
        results = signatures.stylize(self._exported, list(batch), style, statistics)
        for index, (_, error) in enumerate(results):
            if error:
                raise UserInputError(f"the exported model {self.path!r} refuses image {index + 1} of "
                                     f"{len(results)}: {error}")
        return [image for image, _ in results]


def _as_batch(images):
    images = np.asarray(images)
    batch = images[None] if images.ndim == 3 else images
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise UserInputError(f"expected an [H, W, 3] image or an [N, H, W, 3] batch; received shape "
                             f"{images.shape}")
    return batch


def load_stylizer(path):
    """Loads a stylizer as a Stylizer: a built-in pretrained network by name ("magenta-arbitrary": style= any
    image; "magenta-26": style= a built-in index or blend), a `.keras` file, a train_dir, or an exported SavedModel version
    (one-style through its stylize_images signature; arbitrary-style through style_embedding and
    stylize_with_embedding, or stylize_with_options for preserve_color="luminance").

    Raises:
      UserInputError: nothing loadable at `path`.
    """
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        from export import signatures  # pylint: disable=import-outside-toplevel

        loaded = tf.saved_model.load(path)
        if signatures.is_arbitrary(loaded):
            return Stylizer(None, path, exported=loaded)
        endpoint = loaded.signatures["stylize_images"]
        return Stylizer(lambda images: endpoint(images=image_io.to_uint8(images))["stylized"], path)
    model = stylize.load_stylizer(path)
    return Stylizer(lambda images: model(images, training=False), path, model)


def _fast_step(model, style, temporal_weight, alpha, style_size, precision=defaults.PRECISION):
    """A video.FastStep for a stylizer path or built-in name (None: the pretrained arbitrary network) and a style:
    image(s) for an arbitrary-style network, an index or blend ("3:0.5,12:0.5") for the 26-style one."""
    from tf_nst import video  # pylint: disable=import-outside-toplevel

    name = os.fspath(model) if model is not None else pretrained.DEFAULT
    network = stylize.load_stylizer(name)
    if arbitrary_lib.is_multistyle(network):
        spec = "0" if style is None else str(style)
        style = stylize.BuiltinStyle(stylize.builtin_weights(spec))
    elif arbitrary_lib.is_arbitrary(network):
        if style is None:
            raise UserInputError("an arbitrary-style network needs style= (a path, a PIL image or an array)")
        style = stylize.Style(read_style_images(style, style_size or arbitrary_lib.default_style_size(network)),
                              alpha=alpha)
    elif style is not None:
        raise UserInputError(f"the model {model!r} learnt one style and takes no style=")
    weight = defaults.VIDEO_TEMPORAL_WEIGHT if temporal_weight is None else temporal_weight
    return video.FastStep(network, style, weight, pass_model=video.pass_model(name, precision))


def _optimize_step(style, size, temporal_weight, frame_steps, first_frame_steps, weights):
    from tf_nst import video  # pylint: disable=import-outside-toplevel

    extractor_config = vgg.ExtractorConfig(weights=weights, precision=defaults.PRECISION)
    config = optimize.TransferConfig(num_steps=first_frame_steps)
    extractor_config = extractor_for_loss(extractor_config, config)
    styles = [image_io.resize_max_side(image, max(size)) for image in read_style_images(style, max(size))]
    weight = defaults.VIDEO_OPTIMIZE_TEMPORAL_WEIGHT if temporal_weight is None else temporal_weight
    return video.OptimizeStep(vgg.build_extractor(extractor_config), styles, config,
                              (extractor_config.style_layers, extractor_config.content_layers), weight, frame_steps)


def stylize_video(input_path, output_path, style=None, *, model=None, method="fast", temporal_weight=None,
                  max_size=None, overwrite=False, alpha=1.0, style_size=None, frame_steps=defaults.VIDEO_FRAME_STEPS,
                  first_frame_steps=defaults.NUM_STEPS, weights=defaults.WEIGHTS, precision=defaults.PRECISION,
                  callback=None, should_stop=None):
    """Stylises a clip as `main.py video` does (docs/video.md), resuming from its work folder if one is there.

    Args:
      input_path: a video file or a folder of frames. output_path: .mp4/.mov/.mkv/.m4v (H.264), .gif, or a name
        without an extension (a folder of PNG frames).
      style: for an arbitrary-style model (the default, magenta-arbitrary) and method="optimize": a path, a PIL
        image or an array, or a list of them; for magenta-26, an index or a blend such as "3:0.5,12:0.5".
      model: a built-in network's name, a .keras file or a train_dir (method "fast").
      method: "fast" (one pass per frame, blended along the flow) or "optimize" (Ruder et al. 2016).
      temporal_weight: fast: the share of the warped previous output, 0 to defaults.VIDEO_MAX_BLEND; optimize:
        the temporal loss's weight. None: the method's default; 0: plain per-frame.
      max_size, overwrite, alpha, style_size: as the command's flags.
      frame_steps, first_frame_steps, weights: method "optimize": the steps of each later frame, the first
        frame's, and the VGG19 weights ("imagenet", "imagenet_q8", "none" or a file).
      precision: method "fast", a built-in network's precision for each frame's pass: "auto" (mixed_bfloat16 on
        a CPU with native bfloat16 and no GPU, else float32), "float32" or "mixed_bfloat16" (video.pass_model).
      callback: optional callback(video.FrameProgress) after each frame.
      should_stop: optional should_stop() -> bool, asked before each frame: True raises video.VideoStopped.

    Returns:
      A video.VideoResult.
    """
    from tf_nst import video  # pylint: disable=import-outside-toplevel
    from tf_nst import video_io  # pylint: disable=import-outside-toplevel

    if method not in video.METHODS:
        raise UserInputError(f"method={method!r} is not valid; use one of {', '.join(video.METHODS)}")
    plan = video_io.plan_video(os.fspath(input_path), os.fspath(output_path), max_size, overwrite)
    if method == "fast":
        step = _fast_step(model, style, temporal_weight, alpha, style_size, precision)
    else:
        if model is not None or style is None:
            raise UserInputError("method='optimize' takes style= (the style image) and no model=")
        step = _optimize_step(style, plan.size, temporal_weight, frame_steps, first_frame_steps, weights)
    return video.run(plan, step, should_stop=should_stop, callback=callback, replace=overwrite)


def stylize_frames(frames, style=None, *, model=None, temporal_weight=None, alpha=1.0, style_size=None,
                   precision=defaults.PRECISION):
    """A generator of stylised frames for frames in (arrays or eager tensors, uint8 [H, W, 3], one size): the fast
    path of stylize_video, each frame blended with the previous output warped by the flow.

    Yields:
      uint8 [H, W, 3] NumPy frames, one per frame in.
    """
    from tf_nst import video  # pylint: disable=import-outside-toplevel

    return video.stylize_frames(frames, _fast_step(model, style, temporal_weight, alpha, style_size, precision))
