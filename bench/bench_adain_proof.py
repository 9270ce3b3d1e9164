"""Issue #11's proof on real features: a trained arbitrary-style decoder on held-out content x style pairs.

Trains (or resumes) the adain network through the real command, `main.py train --architecture=adain`, in
--run_dir/run, on scikit-image photos with scikit-image styles, the encoder a real VGG19 (--weights, default
the 8-bit ImageNet copy). A later call with a larger --num_steps continues the same run; --eval_only evaluates
the latest checkpoint as it is (the command exports it, training no step). Then, on content and style images
never seen in training, it prints:

1. the PSNR of the alpha = 0 reconstruction (the decoder fed the photo's own relu4_1), trained vs untrained;
2. the style distance of the output to the style against the content's own (goal: at most half);
3. the relu4_1 content distance of the output to the content against the style image's own;
4. the style distance at alpha 0, 0.25, 0.5, 0.75, 1 (goal: falling);
5. blend weights of two styles: the distance to each (goal: moving from one to the other);
6. a left/right mask with the two styles: each half's distance to each style (goal: each half nearer its own);
and the same style distances on HED's VGG16 (an ImageNet VGG16 fine-tuned for edges: a second network that
the decoder was not trained against). Style distance: over relu1_1..relu4_1, the mean of
||(mu, sigma)(x) - (mu, sigma)(s)|| / ||(mu, sigma)(s)|| (channel means and stds; the square root of the
loss's moment_layer_loss). Content distance: ||f(x) - f(c)|| / ||f(c)|| at relu4_1.

Training photos: astronaut, coffee, rocket, retina, both motorcycle views, page; training styles:
immunohistochemistry, colorwheel, brick, grass. Held out: chelsea, camera, coins; styles hubble_deep_field,
gravel.

  python bench/bench_adain_proof.py --num_steps=2000            # trains to step 2000 (resumes), evaluates
  python bench/bench_adain_proof.py --eval_only                 # evaluates the latest checkpoint
"""

import os
import re
import subprocess
import sys
import time

from absl import app
from absl import flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)  # this checkout's tf_nst
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import machine  # beside this script

_RUN_DIR = flags.DEFINE_string("run_dir", "/work/adain_run", "Data in run_dir/data, the training run in run_dir/run.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 2000, "Train (or resume) up to this many steps.")
_EVAL_ONLY = flags.DEFINE_bool("eval_only", False, "Evaluate the latest checkpoint; train no step.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 96, "Training crop side (pixels, a multiple of 8).")
_RESIZE = flags.DEFINE_integer("resize", 128, "Shorter side of every training image before its crop.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Training batch size.")
_WIDTH = flags.DEFINE_float("width", 0.5, "The decoder's width multiplier.")
_WEIGHTS = flags.DEFINE_string("weights", "imagenet_q8", "VGG19 weights: imagenet_q8, imagenet or a file.")
_EVAL_SIZE = flags.DEFINE_integer("eval_size", 256, "Longer side of the held-out images (pixels).")
_HED = flags.DEFINE_bool("hed", True, "Also judge the style distances on HED's VGG16.")
_STYLE_VARIANTS = flags.DEFINE_integer(
    "style_variants", 0, "0: train on the four styles; N > 0: on the wider style set, each with N colour variants "
    "(data in run_dir/data/styles_vN).")
_SHEET = flags.DEFINE_string("sheet", os.path.join(_REPO, "docs", "images", "adain_proof_vgg19q8.jpg"),
                             "Picture sheet (content, style, alpha 0 / 0.5 / 1); empty: none.")

_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "retina", "motorcycle_left", "motorcycle_right", "page")
_TRAIN_STYLES = ("immunohistochemistry", "colorwheel", "brick", "grass")
# The wider set (--style_variants): every bundled image that is not held out (cat is chelsea), and more photos.
_MORE_STYLES = _TRAIN_STYLES + ("astronaut", "coffee", "rocket", "retina", "page", "clock", "moon", "text", "cell",
                                "microaneurysms", "checkerboard", "logo", "binary_blobs", "horse", "shepp_logan_phantom")
_MORE_PHOTOS = _TRAIN_PHOTOS + ("clock", "moon", "cell", "text")
_HELD_OUT = ("chelsea", "camera", "coins")
_HELD_OUT_STYLES = ("hubble_deep_field", "gravel")
_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
_BLENDS = (1.0, 0.75, 0.5, 0.25, 0.0)  # the first style's weight; the second's is 1 - it


def _image(name):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel

    if name.startswith("motorcycle_"):
        image = skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    else:
        image = getattr(skimage.data, name)()
    if image.dtype != np.uint8:  # bool masks and float phantoms
        image = image.astype(np.float64)
        image = np.round(255 * (image - image.min()) / max(np.ptp(image), 1e-12))
    image = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    return image.astype(np.uint8)


def _colour_variant(image, seed):
    """A recoloured copy: grey images through a random dark-to-light (or light-to-dark) two-colour ramp, colour
    ones through a random channel mix, both with a random gamma and gain, so that the styles span dark and light,
    grey and saturated (generic colour augmentation; nothing is drawn from the held-out styles)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(seed)
    x = image.astype(np.float64) / 255.0
    gamma = float(np.exp(rng.uniform(np.log(0.4), np.log(3.0))))
    if np.ptp(x - x.mean(axis=-1, keepdims=True)) < 1e-6:  # grey
        dark, light = rng.uniform(0.0, 0.35, 3), rng.uniform(0.5, 1.0, 3)
        if rng.random() < 0.3:
            dark, light = light, dark
        out = dark + (light - dark) * x[..., :1] ** gamma
    else:
        mix = np.eye(3)[rng.permutation(3)] + rng.normal(0.0, 0.25, (3, 3))
        out = np.clip(x @ mix.T, 0.0, 1.0) ** gamma * rng.uniform(0.2, 1.3)
        if rng.random() < 0.2:
            out = 1.0 - out
    return np.round(255 * np.clip(out, 0.0, 1.0)).astype(np.uint8)


def _write_data(folder, names, variants=0):
    """Each image as folder/NAME.png, and with variants > 0 also NAME_vK.png for K < variants (_colour_variant)."""
    import zlib  # pylint: disable=import-outside-toplevel

    from PIL import Image  # pylint: disable=import-outside-toplevel

    os.makedirs(folder, exist_ok=True)
    for name in names:
        path = os.path.join(folder, f"{name}.png")
        if not os.path.isfile(path):
            Image.fromarray(_image(name)).save(path)
        for k in range(variants):
            path = os.path.join(folder, f"{name}_v{k}.png")
            if not os.path.isfile(path):
                Image.fromarray(_colour_variant(_image(name), zlib.crc32(f"{name}/{k}".encode()))).save(path)


def _latest_step(train_dir):
    """The step of train_dir's latest checkpoint (0 when none), read from its `checkpoint` index."""
    try:
        with open(os.path.join(train_dir, "checkpoint"), encoding="utf-8") as index:
            match = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', index.read(), re.MULTILINE)
    except FileNotFoundError:
        return 0
    return int(match.group(1)) if match else 0


def _train(data_dir, train_dir, num_steps, photos="photos", styles="styles"):
    """Runs (resumes) `main.py train --architecture=adain` to num_steps; returns (steps run, seconds)."""
    start = _latest_step(train_dir)
    command = [sys.executable, os.path.join(_REPO, "main.py"), "train", "--architecture=adain",
               f"--dataset_dir={os.path.join(data_dir, photos)}", f"--style_dir={os.path.join(data_dir, styles)}",
               f"--train_dir={train_dir}", f"--train_image_size={_IMAGE_SIZE.value}",
               f"--train_resize={_RESIZE.value}", f"--batch_size={_BATCH_SIZE.value}",
               f"--width_multiplier={_WIDTH.value}", f"--weights={_WEIGHTS.value}", f"--num_train_steps={num_steps}",
               "--checkpoint_every=100", "--summary_every=0", "--print_every=50"]
    began = time.perf_counter()
    subprocess.run(command, check=True)
    return num_steps - start, time.perf_counter() - began


class _Judge:
    """Style (channel mean/std) and content distances on one network's style layers and content layer."""

    def __init__(self, extractor, style_layers, content_layer):
        self.extractor, self.style_layers, self.content_layer = extractor, style_layers, content_layer

    def features(self, image):
        import numpy as np  # pylint: disable=import-outside-toplevel

        return self.extractor(np.asarray(image, np.float32)[None])

    def style(self, image, style):
        import numpy as np  # pylint: disable=import-outside-toplevel

        from tf_nst import losses  # pylint: disable=import-outside-toplevel

        ours, theirs = self.features(image), self.features(style)
        return float(np.mean([np.sqrt(float(losses.moment_layer_loss(ours[name], *losses.feature_moments(
            theirs[name])))) for name in self.style_layers]))

    def content(self, image, content):
        import numpy as np  # pylint: disable=import-outside-toplevel

        ours, theirs = self.features(image)[self.content_layer], self.features(content)[self.content_layer]
        return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def _psnr(image, reference):
    import numpy as np  # pylint: disable=import-outside-toplevel

    error = np.mean((np.round(np.asarray(image, np.float64)) - np.asarray(reference, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(error, 1e-10)))


def _held_out(names, size, multiple=16):
    """Each image resized to `size` on its longer side and cropped to a multiple of `multiple` (even halves)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    images = {}
    for name in names:
        image = np.asarray(image_io.resize_max_side(_image(name).astype(np.float32), size))
        height, width = (image.shape[0] // multiple) * multiple, (image.shape[1] // multiple) * multiple
        images[name] = np.round(image[:height, :width])
    return images


def _stylize(model, content, styles, **kwargs):
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import adain  # pylint: disable=import-outside-toplevel

    statistics = [adain.style_statistics(model, style[None]) for style in styles]
    return np.asarray(adain.stylize_with_statistics(model, content[None], statistics, **kwargs))[0]


def _mean(values):
    return sum(values) / len(values)


def _judged(judges, fn):
    """{judge name: mean of fn(judge) over the pairs} as 'a / b' text."""
    return " / ".join(f"{_mean(fn(judge)):.3f}" for judge in judges.values())


def _evaluate(models, contents, styles, judges):
    """Prints the six tables; returns the sheet's rows."""
    trained, untrained = models["trained"], models["untrained"]
    names = " / ".join(judges)
    pairs = [(c, s) for c in contents for s in styles]

    print("\n1. Reconstruction at alpha = 0 (held-out photos)\n| decoder | " + " | ".join(contents)
          + " | mean PSNR (dB) |\n| --- |" + " --- |" * (len(contents) + 1))
    for name, model in (("untrained", untrained), ("trained", trained)):
        psnrs = [_psnr(_stylize(model, contents[c], [contents[c]], alpha=0.0), contents[c]) for c in contents]
        print(f"| {name} | " + " | ".join(f"{p:.2f}" for p in psnrs) + f" | {_mean(psnrs):.2f} |", flush=True)

    outputs = {(c, s): _stylize(trained, contents[c], [styles[s]]) for c, s in pairs}
    print(f"\n2-3. Held-out pairs at alpha = 1 (style distance: {names}; content distance at relu4_1 on vgg19)\n"
          "| content | style | style distance: content | output | ratio | content distance: output | style image |"
          "\n| --- | --- | --- | --- | --- | --- | --- |")
    vgg = judges["vgg19"]
    for c, s in pairs:
        before = [judge.style(contents[c], styles[s]) for judge in judges.values()]
        after = [judge.style(outputs[c, s], styles[s]) for judge in judges.values()]
        resized_style = _resize_to(styles[s], contents[c].shape[:2])
        print(f"| {c} | {s} | " + " / ".join(f"{b:.3f}" for b in before) + " | "
              + " / ".join(f"{a:.3f}" for a in after) + " | "
              + " / ".join(f"{a / b:.2f}" for a, b in zip(after, before))
              + f" | {vgg.content(outputs[c, s], contents[c]):.3f} | {vgg.content(resized_style, contents[c]):.3f} |",
              flush=True)

    print(f"\n4. alpha (style distance to the style, {names}, mean over the {len(pairs)} pairs)\n| alpha | "
          + " | ".join(f"{a:g}" for a in _ALPHAS) + " |\n| --- |" + " --- |" * len(_ALPHAS))
    by_alpha = {a: {p: _stylize(trained, contents[p[0]], [styles[p[1]]], alpha=a) for p in pairs} for a in _ALPHAS}
    print("| style distance | " + " | ".join(
        _judged(judges, lambda j, a=a: [j.style(by_alpha[a][p], styles[p[1]]) for p in pairs]) for a in _ALPHAS)
        + " |", flush=True)

    first, second = styles
    print(f"\n5. Blend weights {first}:{second} (distance to each, {names}, mean over the contents)\n"
          f"| weight of {first} | distance to {first} | distance to {second} |\n| --- | --- | --- |")
    for weight in _BLENDS:
        blended = {c: _stylize(trained, contents[c], [styles[first], styles[second]],
                               blend_weights=[weight, 1.0 - weight]) for c in contents}
        print(f"| {weight:g} | " + " | ".join(
            _judged(judges, lambda j, s=s: [j.style(blended[c], styles[s]) for c in contents]) for s in (first, second))
            + " |", flush=True)

    print(f"\n6. Masks: {first} on the left half, {second} on the right (each half's distance to each style, {names}, "
          f"mean over the contents; 'unmasked' rows: the whole picture in one style, cut the same way)\n"
          f"| picture | half | distance to {first} | distance to {second} |\n| --- | --- | --- | --- |")
    pictures = {"masked": {}, f"{first} only": {}, f"{second} only": {}}
    for c, content in contents.items():
        left = _half_mask(content.shape[:2])
        pictures["masked"][c] = _stylize(trained, content, [styles[first], styles[second]], masks=[left, 1.0 - left])
        pictures[f"{first} only"][c], pictures[f"{second} only"][c] = outputs[c, first], outputs[c, second]
    for picture, images in pictures.items():
        for half in ("left", "right"):
            print(f"| {picture} | {half} | " + " | ".join(_judged(judges, lambda j, s=s, h=half: [
                j.style(_half(images[c], h), styles[s]) for c in contents]) for s in (first, second))
                + " |", flush=True)
    return [[contents[c], _resize_to(styles[s], contents[c].shape[:2]),
             by_alpha[0.0][c, s], by_alpha[0.5][c, s], by_alpha[1.0][c, s]]
            for c, s in ((_HELD_OUT[0], first), (_HELD_OUT[2], second))]


def _half_mask(shape):
    import numpy as np  # pylint: disable=import-outside-toplevel

    mask = np.zeros(shape, np.float32)
    mask[:, :shape[1] // 2] = 1.0
    return mask


def _half(image, side):
    middle = image.shape[1] // 2
    return image[:, :middle] if side == "left" else image[:, middle:]


def _resize_to(image, shape):
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    return np.asarray(image_io.resize(image, shape))


def _write_sheet(path, rows, height=160):
    """One row per pair: content, style, alpha 0, 0.5, 1; each tile `height` high."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    lines = []
    for row in rows:
        width = round(row[0].shape[1] * height / row[0].shape[0])
        lines.append(np.concatenate([np.asarray(image_io.resize(image, (height, width))) for image in row], axis=1))
    wide = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, wide - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    image_io.write_image(path, np.clip(np.round(np.concatenate(lines, axis=0)), 0, 255).astype(np.uint8))
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KB)")


def _judges(trained):
    from tf_nst import adain, vgg  # pylint: disable=import-outside-toplevel

    import real_features  # pylint: disable=import-outside-toplevel

    judges = {"vgg19": _Judge(trained.get_layer("encoder"), adain.STYLE_LAYERS, adain.ENCODER_LAYER)}
    if _HED.value:
        config = vgg.ExtractorConfig(backbone="vgg16", weights=real_features.weights_path("hed"))
        judges["hed vgg16"] = _Judge(vgg.build_extractor(config), config.style_layers, config.content_layers[0])
    return judges


def main(argv):
    del argv
    data_dir, train_dir = os.path.join(_RUN_DIR.value, "data"), os.path.join(_RUN_DIR.value, "run")
    variants = _STYLE_VARIANTS.value
    photos, styles = ("photos_more", f"styles_v{variants}") if variants else ("photos", "styles")
    _write_data(os.path.join(data_dir, photos), _MORE_PHOTOS if variants else _TRAIN_PHOTOS)
    _write_data(os.path.join(data_dir, styles), _MORE_STYLES if variants else _TRAIN_STYLES, variants)
    num_steps = _latest_step(train_dir) if _EVAL_ONLY.value else _NUM_STEPS.value
    if num_steps == 0:
        raise app.UsageError(f"no checkpoint in {train_dir!r} to evaluate; train first (without --eval_only)")
    trained_now, seconds = _train(data_dir, train_dir, num_steps, photos, styles)

    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as main.py does
    import keras  # pylint: disable=import-outside-toplevel

    from tf_nst import adain, train, vgg  # pylint: disable=import-outside-toplevel

    print(f"\nmachine: {machine.describe()}; vgg19 ({_WEIGHTS.value}) encoder, decoder "
          f"width {_WIDTH.value:g}; {num_steps} steps of batch {_BATCH_SIZE.value} at {_IMAGE_SIZE.value} px "
          f"(resized to {_RESIZE.value})"
          + (f", {trained_now} of them in this call: {seconds:.0f} s, {1000 * seconds / trained_now:.0f} ms/step "
             "with the start" if trained_now else "")
          + f"; held out {', '.join(_HELD_OUT)} x {', '.join(_HELD_OUT_STYLES)} at {_EVAL_SIZE.value} px", flush=True)
    trained = keras.models.load_model(os.path.join(train_dir, train.MODEL_FILE))
    keras.utils.set_random_seed(0)  # train's default seed: the untrained decoder is the run's start
    untrained = adain.build_model(vgg.ExtractorConfig(backbone="vgg19", weights=_WEIGHTS.value), _WIDTH.value)
    contents = _held_out(_HELD_OUT, _EVAL_SIZE.value)
    styles = _held_out(_HELD_OUT_STYLES, _EVAL_SIZE.value, multiple=1)
    rows = _evaluate({"trained": trained, "untrained": untrained}, contents, styles, _judges(trained))
    if _SHEET.value:
        _write_sheet(_SHEET.value, rows)


if __name__ == "__main__":
    app.run(main)
