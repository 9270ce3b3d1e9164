"""One set of defaults: the command line, the config dataclasses and the Python API read tf_nst.defaults."""

import contextlib
import dataclasses
import inspect
import types

from absl import flags

from tf_nst import api, defaults, losses, optimize, vgg
from tf_nst.cli import flag_groups


def test_the_tuned_loss_weights_are_pinned():
    """Tuned on the ImageNet VGG19, judged on HED VGG16 (BENCHMARKS.md, "Loss weights"): change them there."""
    assert (defaults.CONTENT_WEIGHT, defaults.STYLE_WEIGHT, defaults.TV_WEIGHT) == (1.0, 5.0, 10.0)
    # Per-image transfer's, chosen by the time to reach the TF recipe's picture on HED VGG16 (BENCHMARKS.md, "Time
    # to a good picture: lighter smoothing" and "the deep style layers").
    assert (defaults.TRANSFER_STYLE_WEIGHT, defaults.TRANSFER_TV_WEIGHT) == (8.0, 2.4)
    assert defaults.TRANSFER_STYLE_LAYER_WEIGHTS == (1.0, 1.0, 1.0, 0.5, 0.0)
    assert (defaults.IMAGE_SIZE, defaults.NUM_STEPS, defaults.OPTIMIZER) == (512, 300, "lbfgs")
    # Chosen from loss curves judged on HED VGG16 (BENCHMARKS.md, "Stopping when the picture stops changing").
    assert (defaults.TOLERANCE, defaults.TOLERANCE_WINDOW) == (0.003, 20)
    # Chosen by the time to reach the TF recipe's picture on HED VGG16 (BENCHMARKS.md, "Time to a good picture:
    # coarse to fine from noise", and "... from the pretrained picture, with the network loaded": "auto" starts
    # from it where it is installed, else from noise).
    assert (defaults.INIT, defaults.NUM_SCALES, defaults.COARSE_STEPS) == ("auto", "auto", 100)
    # The fine-tune's (BENCHMARKS.md, "Fine-tuning: the style's scale and transfer's loss shape").
    assert (defaults.FINETUNE_STYLE_WEIGHT, defaults.FINETUNE_TV_WEIGHT, defaults.FINETUNE_STYLE_SIZE) == (
        1.5, defaults.TRANSFER_TV_WEIGHT, defaults.PRETRAINED_STYLE_SIZE)
    # Chosen by the same measure on three pairs (BENCHMARKS.md, "Time to a good picture: the content's detail").
    assert defaults.CONTENT_DETAIL is True
    assert (defaults.AUTO_SCALE_SIZE, defaults.AUTO_MIN_SIDE) == (64, 32)
    # Half float32's step time for the same picture on a CPU with native bfloat16 (BENCHMARKS.md, "bfloat16 on a
    # CPU that has it"); float32 elsewhere and for training.
    assert defaults.PRECISION == "auto"


def test_configs_default_to_the_shared_values():
    assert losses.LossWeights() == losses.LossWeights(
        content=defaults.CONTENT_WEIGHT, style=defaults.STYLE_WEIGHT, tv=defaults.TV_WEIGHT)
    transfer = optimize.TransferConfig()
    assert (transfer.num_steps, transfer.optimizer, transfer.learning_rate, transfer.lbfgs_history) == (
        defaults.NUM_STEPS, defaults.OPTIMIZER, defaults.LEARNING_RATE, defaults.LBFGS_HISTORY)
    # Per-image transfer's own weights, filled in for the run's style layers: the tuned layer weights for the
    # default layers, 1 each for any others (a Python caller's extractor with block5_conv1 gets it at 1).
    assert transfer.loss_weights is None
    tuned = optimize.resolve_loss_weights(transfer, defaults.STYLE_LAYERS).loss_weights
    assert tuned == losses.LossWeights(
        content=defaults.CONTENT_WEIGHT, style=defaults.TRANSFER_STYLE_WEIGHT, tv=defaults.TRANSFER_TV_WEIGHT,
        style_layers=dict(zip(defaults.STYLE_LAYERS, defaults.TRANSFER_STYLE_LAYER_WEIGHTS)))
    other = optimize.resolve_loss_weights(transfer, ("block1_conv1", "block5_conv1")).loss_weights
    assert other == dataclasses.replace(tuned, style_layers={"block1_conv1": 1.0, "block5_conv1": 1.0})
    given = losses.LossWeights(style_layers={"block5_conv1": 0.0})
    assert optimize.resolve_loss_weights(dataclasses.replace(transfer, loss_weights=given),
                                         defaults.STYLE_LAYERS).loss_weights is given
    assert (transfer.tolerance, transfer.tolerance_window) == (defaults.TOLERANCE, defaults.TOLERANCE_WINDOW)
    assert (transfer.init, transfer.num_scales, transfer.coarse_steps, transfer.content_detail) == (
        defaults.INIT, defaults.NUM_SCALES, defaults.COARSE_STEPS, defaults.CONTENT_DETAIL)
    extractor = vgg.ExtractorConfig()
    assert (extractor.backbone, extractor.weights, extractor.style_layers, extractor.content_layers) == (
        defaults.BACKBONE, defaults.WEIGHTS, defaults.STYLE_LAYERS, defaults.CONTENT_LAYERS)


def test_the_command_line_flags_default_to_the_shared_values():
    import tf_nst.cli.transfer  # pylint: disable=import-outside-toplevel,unused-import  (defines its flags)

    flag_groups.define_loss_network()
    flag_groups.define_loss_weights()
    default = lambda name: flags.FLAGS[name].default  # noqa: E731
    assert (default("backbone"), default("weights")) == (defaults.BACKBONE, defaults.WEIGHTS)
    assert tuple(default("style_layers")) == defaults.STYLE_LAYERS
    assert tuple(default("content_layers")) == defaults.CONTENT_LAYERS
    # Each command has its own loss weights (test_each_command_fills_in_its_own_loss_weights); the help says which.
    for name in ("content_weight", "style_weight", "tv_weight"):
        assert default(name) is None
    assert ("(default 8 for transfer, 5 for train, 1.5 for train --init_from, 40 for train --architecture=adain)"
            in " ".join(flags.FLAGS["style_weight"].help.split()))
    assert default("style_layer_weights") is None
    assert ("default: for transfer and train --init_from on the default --style_layers 1,1,1,0.5,0, else "
            "equal") in " ".join(flags.FLAGS["style_layer_weights"].help.split())
    assert (default("image_size"), default("num_steps"), default("optimizer"), default("learning_rate"),
            default("lbfgs_history")) == (defaults.IMAGE_SIZE, defaults.NUM_STEPS, defaults.OPTIMIZER,
                                          defaults.LEARNING_RATE, defaults.LBFGS_HISTORY)
    assert default("tolerance") == defaults.TOLERANCE
    assert (default("init"), default("num_scales"), default("coarse_steps"), default("content_detail")) == (
        defaults.INIT, defaults.NUM_SCALES, defaults.COARSE_STEPS, defaults.CONTENT_DETAIL)
    assert default("precision") == defaults.PRECISION


def test_the_python_api_uses_the_shared_values():
    extractor, transfer_options, loss_weights = api._split_options({})  # pylint: disable=protected-access
    assert extractor.precision == defaults.PRECISION
    assert vgg.ExtractorConfig().precision == "float32"  # what training and the exported networks build with
    assert loss_weights == optimize.resolve_loss_weights(optimize.TransferConfig(), defaults.STYLE_LAYERS).loss_weights
    # Other style layers weigh 1 each; given weights win.
    two_layers = {"style_layers": ["block1_conv1", "block2_conv1"]}
    _, _, other = api._split_options(two_layers)  # pylint: disable=protected-access
    assert other.style_layers == {"block1_conv1": 1.0, "block2_conv1": 1.0}
    _, _, given = api._split_options({"style_layer_weights": [1, 2, 3, 4, 5]})  # pylint: disable=protected-access
    assert given.style_layers == dict(zip(defaults.STYLE_LAYERS, (1.0, 2.0, 3.0, 4.0, 5.0)))
    assert inspect.signature(api.transfer).parameters["image_size"].default == defaults.IMAGE_SIZE
    assert dataclasses.replace(optimize.TransferConfig(), **transfer_options) == optimize.TransferConfig()


@contextlib.contextmanager
def _parsed(*argv):
    """The command line `main.py *argv` parsed into every defined flag, unparsed again afterwards."""
    flags.FLAGS(["main.py", *argv])
    try:
        yield
    finally:
        flags.FLAGS.unparse_flags()


def test_each_command_fills_in_its_own_loss_weights():
    """transfer's, train's and the adain network's defaults where a weight flag is not given; a given one wins."""
    from tf_nst import adain  # pylint: disable=import-outside-toplevel
    from tf_nst.cli import train as train_cli  # pylint: disable=import-outside-toplevel
    from tf_nst.cli import transfer as transfer_cli  # pylint: disable=import-outside-toplevel

    no_masks = types.SimpleNamespace(content_masks=None, style_masks=None)
    terms = lambda weights: (weights.content, weights.style, weights.tv)  # noqa: E731
    folders = ["--dataset_dir=data", "--train_dir=run"]
    with _parsed(*folders):
        transfer = transfer_cli._transfer_config(no_masks).loss_weights  # pylint: disable=protected-access
        train = train_cli._train_config().loss_weights  # pylint: disable=protected-access
    with _parsed(*folders, "--architecture=adain"):
        trained_adain = train_cli._train_config().loss_weights  # pylint: disable=protected-access
    assert terms(transfer) == (defaults.CONTENT_WEIGHT, defaults.TRANSFER_STYLE_WEIGHT, defaults.TRANSFER_TV_WEIGHT)
    assert transfer.style_layers == dict(zip(defaults.STYLE_LAYERS, defaults.TRANSFER_STYLE_LAYER_WEIGHTS))
    assert terms(train) == (defaults.CONTENT_WEIGHT, defaults.STYLE_WEIGHT, defaults.TV_WEIGHT)
    assert train.style_layers == {name: 1.0 for name in defaults.STYLE_LAYERS}
    assert trained_adain == adain.loss_weights()
    with _parsed(*folders, "--init_from=magenta-arbitrary"):
        finetune = train_cli._train_config().loss_weights  # pylint: disable=protected-access
    assert terms(finetune) == (defaults.CONTENT_WEIGHT, defaults.FINETUNE_STYLE_WEIGHT, defaults.FINETUNE_TV_WEIGHT)
    assert finetune.style_layers == dict(zip(defaults.STYLE_LAYERS, defaults.TRANSFER_STYLE_LAYER_WEIGHTS))
    with _parsed(*folders, "--style_weight=7", "--tv_weight=0"):
        transfer = transfer_cli._transfer_config(no_masks).loss_weights  # pylint: disable=protected-access
        train = train_cli._train_config().loss_weights  # pylint: disable=protected-access
    with _parsed(*folders, "--style_weight=7", "--tv_weight=0", "--init_from=magenta-arbitrary",
                 "--style_layer_weights=1,2,3,4,5"):
        finetune = train_cli._train_config().loss_weights  # pylint: disable=protected-access
    assert terms(transfer) == (defaults.CONTENT_WEIGHT, 7.0, 0.0)
    assert terms(train) == (defaults.CONTENT_WEIGHT, 7.0, 0.0)
    assert terms(finetune) == (defaults.CONTENT_WEIGHT, 7.0, 0.0)
    assert finetune.style_layers == dict(zip(defaults.STYLE_LAYERS, (1.0, 2.0, 3.0, 4.0, 5.0)))
    # Transfer's layer weights are for the default style layers: other layers weigh 1 each, and given weights win.
    with _parsed(*folders, "--style_layers=block1_conv1,block5_conv1"):
        transfer = transfer_cli._transfer_config(no_masks).loss_weights  # pylint: disable=protected-access
    assert transfer.style_layers == {"block1_conv1": 1.0, "block5_conv1": 1.0}
    with _parsed(*folders, "--style_layer_weights=1,1,1,1,1"):
        transfer = transfer_cli._transfer_config(no_masks).loss_weights  # pylint: disable=protected-access
    assert transfer.style_layers == {name: 1.0 for name in defaults.STYLE_LAYERS}


def test_a_fine_tune_sees_the_style_and_trains_as_long_as_its_defaults_say():
    """train's style size and steps: the one-style network's, or the fine-tune's with --init_from (the size the
    pretrained network sees a style at); given values win; the Python API's TrainConfig resolves the same."""
    from tf_nst import train  # pylint: disable=import-outside-toplevel
    from tf_nst.cli import train as train_cli  # pylint: disable=import-outside-toplevel

    folders = ["--dataset_dir=data", "--train_dir=run"]
    sized = lambda config: (config.style_size, config.num_steps)  # noqa: E731
    with _parsed(*folders):
        johnson = train.resolve_defaults(train_cli._train_config())  # pylint: disable=protected-access
    with _parsed(*folders, "--init_from=magenta-arbitrary"):
        finetune = train.resolve_defaults(train_cli._train_config())  # pylint: disable=protected-access
    with _parsed(*folders, "--init_from=magenta-arbitrary", "--train_style_size=300", "--num_train_steps=7"):
        given = train.resolve_defaults(train_cli._train_config())  # pylint: disable=protected-access
    assert sized(johnson) == (defaults.TRAIN_STYLE_SIZE, defaults.TRAIN_STEPS)
    assert sized(finetune) == (defaults.FINETUNE_STYLE_SIZE, defaults.FINETUNE_STEPS)
    assert defaults.FINETUNE_STYLE_SIZE == defaults.PRETRAINED_STYLE_SIZE != defaults.TRAIN_STYLE_SIZE
    assert sized(given) == (300, 7)
    api_config = train.resolve_defaults(train.TrainConfig("data", "run", "style.png", architecture="finetune"))
    assert sized(api_config) == sized(finetune) and api_config.loss_weights == finetune.loss_weights
    assert train.resolve_defaults(train.TrainConfig("data", "run", "style.png")).loss_weights is None  # its recipe's
