"""Time to a good picture, judged on a network the optimiser does not use.

The reference is the TF tutorial's recipe as tf_nst runs it: Adam for --ref_steps at the loss weights re-tuned for
it (content 1, style 5, TV 10: losses.LossWeights()'s; --ref_options changes them) on the 8-bit ImageNet VGG19. Its
final picture is judged on HED VGG16 (bench_loss_weights._Judge): a style ratio (lower: more style) and a content
distance (lower: more content kept). Each candidate then runs, keeping its picture every --every steps with the wall
time since its start; the table gives the first kept picture whose style ratio is at most the reference's and whose
content distance is no worse, its time, and the ratio to the reference's time (goal: at most 0.2). Judging happens
after each run, outside the timed part. One process, one run after another, so the ratios compare like with like.

Candidates: 'lbfgs' or 'adam', then ':' options: 'sN' (num_steps, default 300), 'cN' (num_scales, with
coarse_steps from 'kN'), 'detail' (content_detail=True), 'init=noise', 'hN' (L-BFGS history), 'cw=X', 'sw=X', 'tv=X'
(the content, style and total-variation weights; the others stay at losses.LossWeights()'s 1, 5 and 10, the
reference's), 'sl=A/B/C/D/E' (the style layers' relative weights, shallowest first; equal unless given, as the
reference's; so per-image transfer's defaults are 'sw=8:tv=2.4:sl=1/1/1/0.5/0'), 'lr=X' (Adam's learning rate),
'bf16' (the VGG19 in mixed_bfloat16; the reference is always float32), 'pool=avg' (the VGG19's max pooling swapped
for average pooling). Tolerance is 0 in every run (the whole curve).

  python bench/bench_time_to_picture.py --size=256 --candidates=lbfgs:s300,lbfgs:s300:c2:k100
  python bench/bench_time_to_picture.py --size=256 --ref_quality=0.222,1.111 --candidates=lbfgs:s300:init=noise
"""

import functools
import os
import sys
import time

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst

import bench_loss_weights  # beside this script: _image and the HED judge
import machine  # beside this script

_WEIGHTS = "imagenet_q8"  # every run's VGG19, float32 or bf16
_REF_STEPS = flags.DEFINE_integer("ref_steps", 1000, "Adam steps of the reference.")
_EVERY = flags.DEFINE_integer("every", 10, "Keep the picture every this many steps.")
_REF_QUALITY = flags.DEFINE_list(
    "ref_quality", [], "STYLE_RATIO,CONTENT_DISTANCE of an earlier full reference run (it is seeded, so they do "
    "not change): skips the reference's 1000 steps, and times only --ref_timing_steps of them in this process, "
    "scaling that to --ref_steps for the time ratio.")
_REF_TIMING_STEPS = flags.DEFINE_integer("ref_timing_steps", 30, "Reference steps timed with --ref_quality.")
_REF_OPTIONS = flags.DEFINE_string("ref_options", "", "Options of the reference's run, in the candidates' form "
                                   "(e.g. 'cw=1.25:tv=3' for other loss weights); none: the default weights.")
_CANDIDATES = flags.DEFINE_list("candidates", ["lbfgs:s300"], "Configurations (see the module docstring).")
# --size, --pairs (the first pair is used) and --sheet (content, reference, each candidate's arrival picture) are
# bench_loss_weights' flags.
_SHEET = bench_loss_weights._SHEET  # pylint: disable=protected-access


def _config(spec):
    from tf_nst import defaults, losses, optimize  # pylint: disable=import-outside-toplevel

    optimizer, *options = spec.split(":")
    # The options change the TF tutorial's setting (one scale from the content), as the recorded runs did; the
    # finer scales start from the coarser result upsampled alone unless 'detail' is given, as before it existed.
    fields = {"optimizer": optimizer, "num_steps": 300, "tolerance": 0.0, "init": "content", "num_scales": 1,
              "coarse_steps": None, "content_detail": False}
    weights, layer_weights = {}, {}
    for option in options:
        if option.startswith("init="):
            fields["init"] = option[5:]
        elif option == "detail":
            fields["content_detail"] = True
        elif option == "bf16" or option.startswith("pool="):
            pass  # the extractor's: _extractor
        elif option.startswith("sl="):
            layer_weights = dict(zip(defaults.STYLE_LAYERS, (float(w) for w in option[3:].split("/")), strict=True))
        elif option.startswith("lr="):
            fields["learning_rate"] = float(option[3:])
        elif option[:3] in ("cw=", "sw=", "tv="):
            weights[{"cw=": "content", "sw=": "style", "tv=": "tv"}[option[:3]]] = float(option[3:])
        else:
            key = {"s": "num_steps", "c": "num_scales", "k": "coarse_steps", "h": "lbfgs_history"}[option[0]]
            fields[key] = int(option[1:])
    # losses.LossWeights()'s (1, 5, 10), the weights the reference was recorded with, not TransferConfig's.
    return optimize.TransferConfig(**fields, loss_weights=losses.LossWeights(**weights, style_layers=layer_weights))


def _extractor(spec, float32_extractor):
    """The extractor a candidate runs: `float32_extractor`, or another for a 'bf16' or 'pool=' option."""
    options = spec.split(":")[1:]
    precision = "mixed_bfloat16" if "bf16" in options else "float32"
    pooling = next((option[5:] for option in options if option.startswith("pool=")), "max")
    return float32_extractor if (precision, pooling) == ("float32", "max") else _other_extractor(precision, pooling)


@functools.cache
def _other_extractor(precision, pooling):
    from tf_nst import vgg  # pylint: disable=import-outside-toplevel

    return vgg.build_extractor(vgg.ExtractorConfig(weights=_WEIGHTS, precision=precision, pooling=pooling))


def _run(extractor, layers, content, style, config, every):
    """(seconds, {final-scale step: (seconds, picture)}) of one run; pictures every `every` steps."""
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel

    kept = {}
    total = optimize.count_steps(*content.shape[:2], config)
    first_final = total - config.num_steps  # steps before the finest scale

    def callback(step, terms, image):
        del terms
        final_step = step - first_final
        if final_step > 0 and (final_step % every == 0 or step == total):
            kept[final_step] = (time.perf_counter() - start, np.clip(image[0].numpy(), 0, 255))

    start = time.perf_counter()
    optimize.transfer(extractor, content, style, config, *layers, callback=callback)
    return time.perf_counter() - start, kept


def setup():
    """Prints the machine line; returns (content, style, extractor, layers, grade) for the first of --pairs at
    --size on the 8-bit ImageNet VGG19, where grade(picture) is (HED style ratio, HED content distance)."""
    from tf_nst import vgg  # pylint: disable=import-outside-toplevel

    size = bench_loss_weights._SIZE.value  # pylint: disable=protected-access
    content_name, style_name = bench_loss_weights._PAIRS.value[0].split(":")  # pylint: disable=protected-access
    content = bench_loss_weights._image(content_name, size)  # pylint: disable=protected-access
    style = bench_loss_weights._image(style_name, size)  # pylint: disable=protected-access
    print(f"machine: {machine.describe()}; VGG19 imagenet_q8, judge HED VGG16; {content_name}:{style_name} at "
          f"{size} px", flush=True)
    config = vgg.ExtractorConfig(weights=_WEIGHTS)
    extractor = vgg.build_extractor(config)
    judge = bench_loss_weights._Judge()  # pylint: disable=protected-access
    untouched = judge.style(content, style)
    grade = lambda picture: (judge.style(picture, style) / untouched, judge.content(picture, content))  # noqa: E731
    return content, style, extractor, (config.style_layers, config.content_layers), grade


def main(argv):
    del argv
    content, style, extractor, layers, grade = setup()
    timed = _REF_TIMING_STEPS.value if _REF_QUALITY.value else _REF_STEPS.value
    reference = _config(":".join(filter(None, [f"adam:s{timed}", _REF_OPTIONS.value])))
    ref_seconds, ref_kept = _run(extractor, layers, content, style, reference, 1 if _REF_QUALITY.value else timed)
    if _REF_QUALITY.value:
        ref_style, ref_content = (float(value) for value in _REF_QUALITY.value)
        # The first step carries the tracing, once per run: the other steps are scaled, it is not.
        first = ref_kept[1][0]
        ref_seconds = first + (ref_kept[timed][0] - first) * (_REF_STEPS.value - 1) / (timed - 1)
        label = f"reference: adam {_REF_STEPS.value} steps (quality recorded; time from {timed} steps here)"
        sheet = [content]
    else:
        ref_style, ref_content = grade(ref_kept[_REF_STEPS.value][1])
        label = " ".join(filter(None, [f"reference: adam {_REF_STEPS.value} steps", _REF_OPTIONS.value]))
        sheet = [content, ref_kept[_REF_STEPS.value][1]]
    print("| run | arrives at step | seconds | vs reference | HED style ratio | HED content distance |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {label} | {_REF_STEPS.value} | {ref_seconds:.0f} | 1.00 | {ref_style:.3f} | {ref_content:.3f} |",
          flush=True)
    if any("init=pretrained" in spec for spec in _CANDIDATES.value):
        from tf_nst import optimize  # pylint: disable=import-outside-toplevel

        # Loaded before the timed runs, as the VGG19 is: every candidate's time has its one pass, not the load.
        optimize._pretrained_network()  # pylint: disable=protected-access
    for spec in _CANDIDATES.value:
        seconds, kept = _run(_extractor(spec, extractor), layers, content, style, _config(spec), _EVERY.value)
        arrival = None
        for step in sorted(kept):
            style_ratio, content_distance = grade(kept[step][1])
            if style_ratio <= ref_style and content_distance <= ref_content:
                arrival = step
                break
        if arrival is None:
            last = max(kept)
            style_ratio, content_distance = grade(kept[last][1])
            print(f"| {spec} | not within {last} steps | {seconds:.0f} | {seconds / ref_seconds:.3f} | "
                  f"{style_ratio:.3f} | {content_distance:.3f} |", flush=True)
            sheet.append(kept[last][1])
            continue
        print(f"| {spec} | {arrival} | {kept[arrival][0]:.1f} | {kept[arrival][0] / ref_seconds:.3f} | "
              f"{style_ratio:.3f} | {content_distance:.3f} |", flush=True)
        sheet.append(kept[arrival][1])
    if _SHEET.value:
        bench_loss_weights._write_sheet(_SHEET.value, [sheet])  # pylint: disable=protected-access


if __name__ == "__main__":
    app.run(main)
