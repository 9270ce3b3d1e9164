"""Fine-tuning the pretrained network for one style (issue "start from the pretrained network", §2): the HED
judge's style and content distances on held-out photos after N minutes of `train --init_from=magenta-arbitrary`,
against (a) the plain one-pass arbitrary network with that style, (b) a Johnson network trained from scratch as
long, (c) per-image transfer at its defaults (or at --transfer_style_weights, on --transfer_features).

Each run trains through the library's `train` (the command's Trainer) on bench_adain_proof.py's training photos
(--crop crops, batch 4, the 8-bit VGG19 loss network, train's default loss weights for the architecture:
train.resolve_defaults). It is resumed call after call, each to a step count planned from the last call's cost, so
that one run passes every --minutes point; each point is the network written there. Held out (never trained on):
chelsea, camera, coins at 256 px; the style: --finetune_style (a scikit-image name). Distances as in
bench_pretrained_quality.py (HED VGG16: style over its style layers' channel moments, content at block4_conv2).

"Minutes" are the 2-core machine's: the training process's CPU seconds (every thread's, set-up included)
divided by the cores, so that a run that shares the machine is charged what it used, not what it waited; the
wall seconds are printed beside them.

  python bench/bench_finetune.py --finetune_modes=embedding,norms,all --minutes=2,5 --johnson
"""

import os
import statistics
import sys
import tempfile
import time

import numpy as np
from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))
import bench_adain_proof as proof  # noqa: E402  pylint: disable=wrong-import-position
import machine  # noqa: E402  pylint: disable=wrong-import-position
import real_features  # noqa: E402  pylint: disable=wrong-import-position

_CORES = os.cpu_count()
_MODES = flags.DEFINE_list("finetune_modes", ["norms", "embedding"], "What each fine-tune trains.")
_MINUTES = flags.DEFINE_list("minutes", ["2", "5", "10"], "The 2-core CPU minutes each run is judged at.")
_JOHNSON = flags.DEFINE_bool("johnson", True, "Also a Johnson network from scratch, to the same steps.")
_STYLE_NAME = flags.DEFINE_string("finetune_style", "hubble_deep_field", "The style (a scikit-image name).")
_CROP = flags.DEFINE_integer("crop", 128, "Training crop side.")
_RESIZE = flags.DEFINE_integer("finetune_resize", None, "Each training photo's shorter side before its crop "
                               "(default: train's).")
_STYLE_WEIGHTS = flags.DEFINE_list("finetune_style_weights", [], "Style weights to fine-tune with, each a run per "
                                   "mode (content weight 1); none: one run per mode at train's default for it.")
_STYLE_SIZE = flags.DEFINE_integer("finetune_style_size", None, "The style image's longer side for the training's "
                                   "Gram targets (default: train's).")
_TV = flags.DEFINE_float("finetune_tv_weight", None, "The TV weight of every run (default: train's).")
_LAYER_WEIGHTS = flags.DEFINE_list("finetune_style_layer_weights", [], "The style layers' relative weights, "
                                    "shallowest first (default: train's, equal).")
_LEARNING_RATE = flags.DEFINE_float("finetune_learning_rate", None, "Adam's learning rate (default: train's).")
_MORE_PHOTOS = flags.DEFINE_bool("finetune_more_photos", False, "Train on bench_adain_proof.py's wider photo set "
                                  "(its --style_variants photos) rather than its seven.")
_SHEET = flags.DEFINE_string("finetune_sheet", "", "Write a picture sheet here (JPEG): a row per held-out photo, "
                              "then the plain pass, each network as judged, per-image transfer (its last style "
                              "weight); empty: none.")
_TRANSFER = flags.DEFINE_bool("transfer", True, "Also per-image transfer at its defaults (256 px) per held-out photo.")
_TRANSFER_WEIGHTS = flags.DEFINE_list("transfer_style_weights", [], "Per-image transfer's style weights, a row each "
                                      "(none: its default).")
_TRANSFER_FEATURES = flags.DEFINE_enum("transfer_features", "vgg19_q8", ["vgg19_q8", "judge"],
                                       "Per-image transfer's loss network: the 8-bit VGG19 (its default offline), or "
                                       "the judge's own HED VGG16, a diagnostic of the loss network (the judge is "
                                       "then not independent).")


def _cpu_seconds():
    return time.process_time()


def main(argv):
    del argv
    from tf_nst import (  # pylint: disable=import-outside-toplevel
        arbitrary, defaults, image_io, losses, pretrained, stylize, train, train_finetune, vgg)

    work = tempfile.mkdtemp()
    photos = os.path.join(work, "photos")
    os.makedirs(photos)
    for name in proof._MORE_PHOTOS if _MORE_PHOTOS.value else proof._TRAIN_PHOTOS:  # pylint: disable=protected-access
        image_io.write_image(os.path.join(photos, f"{name}.png"), proof._image(name))  # pylint: disable=protected-access
    style_path = os.path.join(work, "style.png")
    style = proof._image(_STYLE_NAME.value)  # pylint: disable=protected-access
    image_io.write_image(style_path, style)
    config = vgg.ExtractorConfig(backbone="vgg16", weights=real_features.weights_path("hed"))
    judge = proof._Judge(vgg.build_extractor(config), config.style_layers,  # pylint: disable=protected-access
                         config.content_layers[0])
    held_out = proof._held_out(proof._HELD_OUT, 256)  # pylint: disable=protected-access
    judged_style = np.asarray(image_io.resize_shorter_side(style.astype(np.float32), 256))

    columns = [list(held_out.values())]  # the sheet's: the photos, then each judged network's pictures

    def grade(model_fn):
        outputs = {name: model_fn(image) for name, image in held_out.items()}
        columns.append(list(outputs.values()))
        return (statistics.mean(judge.style(o, judged_style) for o in outputs.values()),
                statistics.mean(judge.content(o, held_out[n]) for n, o in outputs.items()))

    print(f"machine: {machine.describe()}; style {_STYLE_NAME.value}; crops {_CROP.value} px, batch 4; held out "
          f"{', '.join(held_out)}")
    source = pretrained.load(pretrained.ARBITRARY)
    seen = stylize.read_styles([style_path], 256)[0].astype(np.float32)
    plain = grade(lambda image: np.asarray(arbitrary.stylize(source, image[None], [seen[None]]))[0])
    print("| network | steps | training: 2-core CPU minutes | HED style distance | vs the plain pass | HED content distance |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| the plain arbitrary pass | 0 | 0 | {plain[0]:.3f} | 1.00 | {plain[1]:.3f} |", flush=True)
    if _TRANSFER.value:
        import tf_nst  # pylint: disable=import-outside-toplevel

        features = ({"weights": "imagenet_q8"} if _TRANSFER_FEATURES.value == "vgg19_q8"
                    else {"backbone": "vgg16", "weights": real_features.weights_path("hed")})
        for weight in _TRANSFER_WEIGHTS.value or [None]:
            options = {**features, **({} if weight is None else {"style_weight": float(weight)})}
            cpu, wall, outputs = _cpu_seconds(), time.perf_counter(), {}
            for name, image in held_out.items():
                outputs[name] = tf_nst.transfer(image, style, image_size=256, **options).astype(np.float32)
            cpu, wall = (_cpu_seconds() - cpu) / len(held_out), (time.perf_counter() - wall) / len(held_out)
            transferred = list(outputs.values())
            style_distance = statistics.mean(judge.style(o, judged_style) for o in outputs.values())
            content_distance = statistics.mean(judge.content(o, held_out[n]) for n, o in outputs.items())
            label = ("defaults" if weight is None else f"style weight {float(weight):g}") + (
                ", on the judge's features" if _TRANSFER_FEATURES.value == "judge" else "")
            print(f"| per-image transfer, {label}, per photo | - | {cpu / _CORES / 60:.1f} min ({wall:.0f} s wall) | "
                  f"{style_distance:.3f} | {style_distance / plain[0]:.2f} | {content_distance:.3f} |", flush=True)
    runs = [("finetune", mode, None if weight is None else float(weight))
            for mode in _MODES.value for weight in _STYLE_WEIGHTS.value or [None]]
    runs += [("johnson", None, None)] if _JOHNSON.value else []
    targets = [float(m) * 60 * _CORES for m in _MINUTES.value]  # CPU seconds
    for architecture, mode, style_weight in runs:
        train_dir = os.path.join(work, f"{architecture}_{mode}_{style_weight}")
        weight_text = "its defaults" if style_weight is None else f"style weight {style_weight:g}"
        name = f"fine-tuned ({mode}, {weight_text})" if architecture == "finetune" else "Johnson from scratch"
        given = {"style": style_weight, "tv": _TV.value, "layer_weights": _LAYER_WEIGHTS.value or None}
        given = {key: value for key, value in given.items() if value is not None}
        weights = None
        if given and architecture == "finetune":
            weights = train_finetune.loss_weights(defaults.STYLE_LAYERS, **given)
        elif given:
            weights = losses.LossWeights(**{key: value for key, value in given.items() if key != "layer_weights"})
        cpu = wall = 0.0
        steps, calls = 0, []  # calls: (steps run, CPU seconds) of each train() call
        for target in targets:
            while cpu < target:
                if len(calls) < 2:  # two calls price a step and the set-up each call repeats
                    planned = (5, 15)[len(calls)]
                else:
                    (steps_a, cpu_a), (steps_b, cpu_b) = calls[0], calls[1]
                    per_step = max((cpu_b - cpu_a) / (steps_b - steps_a), 1e-3)
                    setup = max(cpu_a - steps_a * per_step, 0.0)
                    planned = max(1, int((target - cpu - setup) / per_step))
                run = train.TrainConfig(
                    dataset_dir=photos, train_dir=train_dir, style_image=style_path, architecture=architecture,
                    finetune=mode or "norms", image_size=_CROP.value, resize=_RESIZE.value,
                    style_size=_STYLE_SIZE.value, batch_size=4,
                    num_steps=steps + planned, checkpoint_every=100_000, summary_every=0, print_every=0,
                    extractor=vgg.ExtractorConfig(weights="imagenet_q8"), loss_weights=weights,
                    **({} if _LEARNING_RATE.value is None else {"learning_rate": _LEARNING_RATE.value}))
                start_cpu, start_wall = _cpu_seconds(), time.perf_counter()
                result = train.train(run, train.History())
                used = _cpu_seconds() - start_cpu
                cpu, wall, steps = cpu + used, wall + time.perf_counter() - start_wall, steps + planned
                calls.append((planned, used))
            model = stylize.load_stylizer(result.model_path)
            style_distance, content_distance = grade(lambda image, m=model: stylize.stylize_image(m, image))
            print(f"| {name} | {steps} | {cpu / _CORES / 60:.1f} min ({wall:.0f} s wall) | {style_distance:.3f} | "
                  f"{style_distance / plain[0]:.2f} | {content_distance:.3f} |", flush=True)
    if _SHEET.value:
        if _TRANSFER.value:
            columns.append(transferred)
        proof._write_sheet(_SHEET.value, [list(row) for row in zip(*columns)])  # pylint: disable=protected-access


if __name__ == "__main__":
    app.run(main)
