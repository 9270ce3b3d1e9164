"""Fine-tuning the pretrained network for one style (issue "start from the pretrained network", §2): the HED
judge's style and content distances on held-out photos after N minutes of `train --init_from=magenta-arbitrary`,
against the plain one-pass arbitrary network with that style and a Johnson network trained from scratch as long.

Each run trains through the library's `train` (the command's Trainer) on bench_adain_proof.py's training photos
(--image_size crops, batch 4, the 8-bit VGG19 loss network, train's default loss weights), up to a step count;
a second call resumes it to the next count, so one run gives every point of its curve; each point is the
network written at that step. Held out: chelsea, camera, coins at 256 px; the style: --style (a scikit-image
name). Distances as in bench_pretrained_quality.py (HED VGG16: style over its style layers' channel moments,
content at block4_conv2); the wall time is the training's own, the machine noted.

  python bench/bench_finetune.py --finetune_modes=norms,embedding --steps=50,150 --johnson
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

_MODES = flags.DEFINE_list("finetune_modes", ["norms", "embedding"], "What each fine-tune trains.")
_STEPS = flags.DEFINE_list("steps", ["50", "150"], "The step counts each run is judged at (cumulative).")
_JOHNSON = flags.DEFINE_bool("johnson", True, "Also a Johnson network from scratch, to the same steps.")
_STYLE_NAME = flags.DEFINE_string("finetune_style", "hubble_deep_field", "The style (a scikit-image name).")
_CROP = flags.DEFINE_integer("crop", 128, "Training crop side.")


def main(argv):
    del argv
    from tf_nst import arbitrary, image_io, pretrained, stylize, train, vgg  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp()
    photos = os.path.join(work, "photos")
    os.makedirs(photos)
    for name in proof._TRAIN_PHOTOS:  # pylint: disable=protected-access
        image_io.write_image(os.path.join(photos, f"{name}.png"), proof._image(name))  # pylint: disable=protected-access
    style_path = os.path.join(work, "style.png")
    style = proof._image(_STYLE_NAME.value)  # pylint: disable=protected-access
    image_io.write_image(style_path, style)
    config = vgg.ExtractorConfig(backbone="vgg16", weights=real_features.weights_path("hed"))
    judge = proof._Judge(vgg.build_extractor(config), config.style_layers,  # pylint: disable=protected-access
                         config.content_layers[0])
    held_out = proof._held_out(proof._HELD_OUT, 256)  # pylint: disable=protected-access
    judged_style = np.asarray(image_io.resize_shorter_side(style.astype(np.float32), 256))

    def grade(model_fn):
        outputs = {name: model_fn(image) for name, image in held_out.items()}
        return (statistics.mean(judge.style(o, judged_style) for o in outputs.values()),
                statistics.mean(judge.content(o, held_out[n]) for n, o in outputs.items()))

    print(f"machine: {machine.describe()}; style {_STYLE_NAME.value}; crops {_CROP.value} px, batch 4; held out "
          f"{', '.join(held_out)}")
    source = pretrained.load(pretrained.ARBITRARY)
    seen = stylize.read_styles([style_path], 256)[0].astype(np.float32)
    plain = grade(lambda image: np.asarray(arbitrary.stylize(source, image[None], [seen[None]]))[0])
    print("| network | steps | training s | HED style distance | vs the plain pass | HED content distance |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| the plain arbitrary pass | 0 | 0 | {plain[0]:.3f} | 1.00 | {plain[1]:.3f} |", flush=True)
    runs = [("finetune", mode) for mode in _MODES.value] + ([("johnson", None)] if _JOHNSON.value else [])
    for architecture, mode in runs:
        train_dir = os.path.join(work, f"{architecture}_{mode}")
        seconds = 0.0
        for steps in (int(s) for s in _STEPS.value):
            run = train.TrainConfig(
                dataset_dir=photos, train_dir=train_dir, style_image=style_path, architecture=architecture,
                finetune=mode or "norms", image_size=_CROP.value, style_size=512, batch_size=4, num_steps=steps,
                checkpoint_every=10_000, summary_every=0, print_every=0,
                extractor=vgg.ExtractorConfig(weights="imagenet_q8"))
            start = time.perf_counter()
            result = train.train(run, train.History())
            seconds += time.perf_counter() - start
            model = stylize.load_stylizer(result.model_path)
            style_distance, content_distance = grade(lambda image, m=model: stylize.stylize_image(m, image))
            name = f"fine-tuned ({mode})" if architecture == "finetune" else "Johnson from scratch"
            print(f"| {name} | {steps} | {seconds:.0f} | {style_distance:.3f} | {style_distance / plain[0]:.2f} | "
                  f"{content_distance:.3f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
