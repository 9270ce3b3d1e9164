"""Loss curves for choosing `--tolerance`: where each tolerance would stop a run, and what the picture is then.

Each (content, style) pair runs the default transfer (L-BFGS) for --num_steps with --tolerance=0 on the 8-bit
ImageNet VGG19, recording the total loss after every step and the image every --every steps. For each candidate
tolerance it then finds the step at which the run would have stopped (the best loss improved by less than that
fraction over the last --window steps; progress.Convergence, the rule transfer() uses) and judges the image at the
nearest recorded step on HED's VGG16 (bench_loss_weights._Judge): style ratio and content distance, beside the
full run's. Everything runs in this one process.

  python bench/bench_tolerance.py --num_steps=300 --pairs=chelsea:hubble_deep_field,rocket:coffee  # ~10 min
"""

import time

import numpy as np
from absl import app
from absl import flags

import bench_loss_weights  # beside this script: _image and the HED judge
import machine  # beside this script

# --size, --num_steps and --pairs are bench_loss_weights' flags.
_SIZE, _NUM_STEPS, _PAIRS = bench_loss_weights._SIZE, bench_loss_weights._NUM_STEPS, bench_loss_weights._PAIRS
_OPTIMIZER = flags.DEFINE_enum("optimizer", "lbfgs", ["lbfgs", "adam"], "Optimiser.")
_EVERY = flags.DEFINE_integer("every", 10, "Keep the image every this many steps.")
_WINDOW = flags.DEFINE_integer("window", 20, "Steps over which the improvement is measured.")
_TOLERANCES = flags.DEFINE_list("tolerances", ["0.03", "0.01", "0.003", "0.001", "0.0003"], "Candidates.")


def _stop_step(totals, tolerance, window):
    """The step (from 1) at which progress.Convergence stops a run with these per-step totals, or None."""
    from tf_nst import progress  # pylint: disable=import-outside-toplevel

    convergence = progress.Convergence(tolerance, window)
    for step, total in enumerate(totals, start=1):
        if convergence.update(total):
            return step
    return None


def main(argv):
    del argv
    from tf_nst import optimize, vgg  # pylint: disable=import-outside-toplevel

    print(f"machine: {machine.describe()}; VGG19 imagenet_q8, judge HED VGG16; "
          f"{_SIZE.value} px, {_OPTIMIZER.value} {_NUM_STEPS.value} steps, window {_WINDOW.value}", flush=True)
    config = vgg.ExtractorConfig(weights="imagenet_q8")
    extractor = vgg.build_extractor(config)
    judge = bench_loss_weights._Judge()  # pylint: disable=protected-access
    print("| pair | tolerance | stops at step | seconds | HED style ratio | HED content distance |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for pair in _PAIRS.value:
        content_name, style_name = pair.split(":")
        content = bench_loss_weights._image(content_name, _SIZE.value)  # pylint: disable=protected-access
        style = bench_loss_weights._image(style_name, _SIZE.value)  # pylint: disable=protected-access
        untouched = judge.style(content, style)
        totals, times, images = [], [], {}
        start = time.perf_counter()

        def callback(step, terms, image, totals=totals, times=times, images=images, start=start):
            totals.append(float(terms["total"]))
            times.append(time.perf_counter() - start)
            if step % _EVERY.value == 0 or step == _NUM_STEPS.value:
                images[step] = np.clip(image[0].numpy(), 0, 255)

        transfer_config = optimize.TransferConfig(num_steps=_NUM_STEPS.value, optimizer=_OPTIMIZER.value,
                                                  init="content", num_scales=1, tolerance=0.0)
        optimize.transfer(extractor, content, style, transfer_config, config.style_layers, config.content_layers,
                          callback=callback)
        print(f"<!-- {pair} totals every 10 steps: "
              f"{' '.join(f'{t:.4f}' for t in totals[9::10])} -->", flush=True)
        for tolerance in [0.0] + [float(t) for t in _TOLERANCES.value]:
            step = _stop_step(totals, tolerance, _WINDOW.value) if tolerance else None
            step = step or _NUM_STEPS.value
            kept = min(images, key=lambda s, step=step: abs(s - step))
            result = images[kept]
            print(f"| {pair} | {tolerance:g} | {step} | {times[step - 1]:.0f} | "
                  f"{judge.style(result, style) / untouched:.3f} | {judge.content(result, content):.3f} |",
                  flush=True)


if __name__ == "__main__":
    app.run(main)
