"""The defaults that every entry point shares: the command line, the config dataclasses and the Python API.

Importing this module is cheap (no TensorFlow), so the command line can read it before TensorFlow loads.
"""

# The loss network (Gatys et al. 2016): style on the first convolution of every block, content on block4_conv2.
BACKBONE = "vgg19"
WEIGHTS = "imagenet"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYERS = ("block4_conv2",)

# Loss weights. Every term is relative to its target's magnitude (losses.py), so they hold across image sizes
# and backbones; tuned on the ImageNet VGG19 (BENCHMARKS.md, "Loss weights"). These are losses.LossWeights()'s,
# which the feed-forward network's training reads.
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 5.0
TV_WEIGHT = 10.0
# Per-image transfer's (TransferConfig, the `transfer` command, api.transfer): re-tuned for its coarse-to-fine
# L-BFGS from noise. A lighter TV term kept more content at more style on both astronaut pairs at 256 px
# (BENCHMARKS.md, "Time to a good picture: lighter smoothing"); the style weight goes with the layer weights below.
TRANSFER_STYLE_WEIGHT = 8.0
TRANSFER_TV_WEIGHT = 2.4
# And its style layers' relative weights, one per STYLE_LAYERS entry, for when the style layers are those: block5_conv1
# out and block4_conv1 at half. The deep layers' Gram matrices carry a style picture's large objects (the coffee's
# cup, painted over the astronaut's face from the coarsest scale on); without them the face stays, and with the
# style weight doubled all three pairs reach the tutorial's picture at 256 px, and the two Hubble pairs at 512 px
# (BENCHMARKS.md, "Time to a good picture: the deep style layers"). A layer of weight 0 is left out of the loss,
# and the VGG never runs past the layers used.
TRANSFER_STYLE_LAYER_WEIGHTS = (1.0, 1.0, 1.0, 0.5, 0.0)

# Per-image optimisation.
IMAGE_SIZE = 512
# The largest --image_size: the side of files.MAX_PIXELS, the most pixels an input may have.
MAX_IMAGE_SIZE = 10_000
# Upper bounds of the other integer flags, so that a typo is refused in one line rather than failing deep
# inside TensorFlow or NumPy. numpy.random.seed (keras.utils.set_random_seed) takes at most 2**32 - 1 and some
# TensorFlow seeds are int32, so seeds fit an int32.
MAX_SEED = 2**31 - 1
MAX_STEPS = 1_000_000  # transfer: --num_steps, --coarse_steps, --save_every, and --print_every
MAX_TRAIN_STEPS = 100_000_000  # train: --num_train_steps, --checkpoint_every, --summary_every
MAX_LBFGS_HISTORY = 1_000
MAX_BATCH_SIZE = 4_096
MAX_VERSION = 2**63 - 1  # TF Serving reads a version folder's name as an int64
# transfer's --style_scale: a style 10x the output's size holds all the detail a Gram matrix can use; its
# longer side must also stay within MAX_IMAGE_SIZE, and its pixels within the memory check (tf_nst/memory.py).
MAX_STYLE_SCALE = 10.0
NUM_STEPS = 300
OPTIMIZER = "lbfgs"
# Start from noise and optimise coarse to fine, halving down to about AUTO_SCALE_SIZE px with COARSE_STEPS steps
# at each coarser scale: this reaches the TF tutorial's picture (Adam, 1000 steps, judged on HED VGG16) in 0.12
# of its time at 256 px and 0.09 at 512 px, where starting from the content at one scale never reaches it
# (BENCHMARKS.md, "Time to a good picture: coarse to fine from noise").
# With the pretrained arbitrary network installed (the `pretrained` extra), "auto" starts instead from its one-pass
# picture at one scale (sizes.resolve_init; not for tiled runs): all six pair-and-size cases reach the tutorial's
# picture in at most 0.03 of its time, the astronaut with the coffee at 512 px included, which no start from noise
# reached (BENCHMARKS.md, "Time to a good picture from the pretrained picture, with the network loaded").
INIT = "auto"
NUM_SCALES = "auto"
COARSE_STEPS = 100
AUTO_SCALE_SIZE = 64  # the coarsest scale's longer side that NUM_SCALES="auto" aims at
AUTO_MIN_SIDE = 32  # ... and the shorter side it keeps at least
# Start each finer scale from the coarser result upsampled plus the content's detail that the coarser scale could
# not hold: on three pairs at 256 px it keeps more content at the same style or a little less, and on Chelsea with
# the Hubble field it arrives where the plain upsampled start fell short (BENCHMARKS.md, "Time to a good picture:
# the content's detail").
CONTENT_DETAIL = True
# The VGG's compute precision, resolved by precision.resolve: mixed_bfloat16 on a CPU-only machine that runs
# bfloat16 natively (about 0.55x float32's step time there, the same picture on HED VGG16), float32 elsewhere
# (BENCHMARKS.md, "bfloat16 on a CPU that has it"). Per-image transfer only: `train` reads "auto" as float32.
PRECISION = "auto"
LEARNING_RATE = 5.0
LBFGS_HISTORY = 100
# Stop a scale (or tile) once its best total loss improved by less than TOLERANCE (a fraction) over the last
# TOLERANCE_WINDOW steps; num_steps stays the upper bound (BENCHMARKS.md, "Stopping when the picture stops
# changing").
TOLERANCE = 0.003
TOLERANCE_WINDOW = 20

# The arbitrary-style network's loss (Huang & Belongie 2017, §6: L = Lc + lambda Ls, lambda = 10), both terms
# relative (losses.py). Content 1: the reference term. Style 4 x 10: the paper sums the four layers' mean/std
# errors and weighs the sum by lambda; ours averages them, so lambda is multiplied by the four layers. For
# relu4_1 the paper's raw ratio and ours are the same: the target t carries the style's relu4_1 statistics, so
# dividing the content error by ||t||^2 and the style error by ||mu(s)||^2 + ||sigma(s)||^2 divides both by the
# same number. The other layers count equally here (relative errors, as for Gram matrices) where the paper's
# raw sum lets the larger early activations dominate. No TV term: the paper has none. Not tuned beyond that.
ADAIN_CONTENT_WEIGHT = 1.0
ADAIN_STYLE_WEIGHT = 40.0
ADAIN_TV_WEIGHT = 0.0
# The arbitrary-style network sees each style image with its shorter side at this many pixels (Huang & Belongie
# 2017 train and test at 512): `stylize --style_size`, `export --style_size` (the served model's rule),
# load_stylizer's style_size= and RandomStyle's.
STYLE_SIZE = 512
# The pretrained arbitrary network's style predictor was trained on 256 x 256 styles (Ghiasi et al. 2017, §3);
# `stylize --style_size` defaults to it for that network (measured: BENCHMARKS.md, "Pretrained networks").
PRETRAINED_STYLE_SIZE = 256
# train --init_from=magenta-arbitrary: what the fine-tune trains (train_finetune.FINETUNE_MODES). "norms" follows
# Dumoulin et al. 2017 (§4: a new style in the normalisation parameters). Measured on the 2-core CPU (BENCHMARKS.md,
# "Fine-tuning the pretrained network"): "norms" and "all" reach the same style/content trade-off on held-out
# photos after 2 and after 5 minutes (all at style weight 1: 0.96 of the plain pass's style distance at 0.99 of
# its content distance; norms at 0.8 and 1.5 on either side of that point), and neither improves from 2 to 5
# minutes; "norms" trains the fewest weights that get there. "embedding" alone moves slowly and costs more content
# for its style (after 5 minutes 0.78 of the plain pass's style distance at 1.14 of its content distance).
FINETUNE = "norms"
# ... and its loss and style size (train.resolve_defaults). The style is seen at the size at which the arbitrary
# network's style predictor sees it (PRETRAINED_STYLE_SIZE), so that the fine-tuned network paints the textures at
# the plain pass's scale: with the style at the one-style network's 512 px the fine-tune learned textures 1.7x too
# fine for pictures of the plain pass's size. Per-image transfer's TV weight and style layer weights (block5_conv1
# out), which were tuned on the same HED judge. Together they moved the fine-tune's style/content trade-off
# below the plain pass's: at its content distance, about 0.88 of its style distance, where train's defaults gave
# about 0.98 (BENCHMARKS.md, "Fine-tuning: the style's scale and transfer's loss shape"). Style weight 1.5 keeps
# about the plain pass's content distance; a larger --style_weight trades content for more style. Neither the
# whole transformer, a larger learning rate, more steps nor crops at the held-out photos' scale did better: the
# distances settle within about 150 steps of batch 4 at 128 px, so FINETUNE_STEPS leaves a margin. That is about
# what this loss allows: per-image transfer, optimising each picture to the same loss, reaches about 0.86 at the
# plain pass's content distance (BENCHMARKS.md, "Fine-tuning: what the loss allows").
FINETUNE_STYLE_WEIGHT = 1.5
FINETUNE_TV_WEIGHT = TRANSFER_TV_WEIGHT
FINETUNE_STYLE_SIZE = PRETRAINED_STYLE_SIZE
FINETUNE_STEPS = 300
# The one-style network's (train's "johnson"): the style's longer side, and the steps (Johnson et al. 2016: 40k
# steps of batch 4).
TRAIN_STYLE_SIZE = 512
TRAIN_STEPS = 40_000
# `video`: the fast path blends each stylised frame with the previous output warped by the flow, this much of
# the previous output where the flow is reliable (0: plain per-frame); at most VIDEO_MAX_BLEND, so that every
# frame keeps at least that share of its own stylised picture and nothing compounds over a long shot.
VIDEO_TEMPORAL_WEIGHT = 0.5
VIDEO_MAX_BLEND = 0.95
# The fast path's network passes in flight at once (video.Consistency.outputs): on the 2-core CPU two passes at
# once ran magenta-26 at 512x340 px in 0.85x (float32) and 0.73x (bfloat16) the time a frame of one pass using
# both cores, whose threads wait on each other; the frames stay in order.
VIDEO_PASSES = 2
# --method=optimize: the weight of the temporal loss (losses.temporal_loss, Ruder et al. 2016), and the steps of
# each frame after the first (which starts from the previous result warped, at one scale).
VIDEO_OPTIMIZE_TEMPORAL_WEIGHT = 200.0
VIDEO_FRAME_STEPS = 100
