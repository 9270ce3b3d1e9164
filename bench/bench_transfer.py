"""Per-image transfer speed: ms per step and peak memory, tf_nst (Adam, L-BFGS) beside the TF tutorial recipe
and a plain PyTorch Gatys (bench/torch_gatys.py).

Each configuration runs in its own process (so peak RSS is its own), one after another in this one run, so the
ratios compare like with like on a noisy machine. Every configuration runs the 8-bit ImageNet VGG19
(--weights=imagenet_q8; 'none' for random tf_nst weights), so all do the same arithmetic.
'CPU ms/step' is the process's CPU time (all its threads) per step: on one thread ('+1t') it is the work a step
takes, which other jobs on a shared machine inflate far less than the wall time, so its ratios are the ones to
read there. Configurations run with TensorFlow's default CPU allocator unless they end in '+pooled'; `main.py` runs with
the pooled one. 'pytorch' runs with --torch_python (torch is a bench-only dependency); without torch there the
row says so.

  python bench/bench_transfer.py                  # 256 and 512 px, 10 timed steps each
  python bench/bench_transfer.py --methods=tutorial,lbfgs,lbfgs+bf16 --history_steps=100  # L-BFGS's full history
  python bench/bench_transfer.py --sizes=256 --steps=5 --methods=tutorial,adam,lbfgs,pytorch \
      --torch_python=/path/to/venv-with-torch/bin/python
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst

import machine  # beside this script

_SIZES = flags.DEFINE_list("sizes", ["256", "512"], "Square image sizes (pixels).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per configuration (after 2 warm-up steps).")
_HISTORY_STEPS = flags.DEFINE_integer(
    "history_steps", 0, "L-BFGS configurations first run this many more untimed steps, so that the timed ones use a "
    "fuller history (--history_steps=100: the default history of 100 pairs, as in most steps of a long run).")
_METHODS = flags.DEFINE_list(
    "methods", ["tutorial", "pytorch", "adam", "lbfgs", "adam+pooled", "lbfgs+pooled", "lbfgs+bf16", "lbfgs+xla"],
    "Configurations: 'tutorial', 'pytorch', or 'adam'/'lbfgs' with optional '+bf16', '+xla' and '+every' (every "
    "style layer at weight 1, as the recipe; the default leaves block5_conv1 out); any of them with "
    "'+1t' runs on one thread (OMP_NUM_THREADS, TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS = 1); any TF one with "
    "'+pooled' runs with TensorFlow's pooled CPU allocator (TF_CPU_ALLOCATOR_USE_BFC, as main.py sets it), "
    "the others with its default allocator.")
_ONE = flags.DEFINE_string("one", None, "Internal: run one configuration 'method:size' and print JSON.")
_WEIGHTS = flags.DEFINE_enum("weights", "imagenet_q8", ["imagenet_q8", "none"], "VGG19 weights of every run.")
_TORCH_PYTHON = flags.DEFINE_string("torch_python", sys.executable, "A Python with torch, for 'pytorch'.")

_STYLE = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def _tutorial_step(size, weights):
    """The TensorFlow style-transfer tutorial's recipe: Keras VGG19, tf.function, Adam, clip to [0, 1]."""
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import weights as weights_lib  # pylint: disable=import-outside-toplevel

    vgg = keras.applications.VGG19(include_top=False, weights=None)
    if weights == "imagenet_q8":
        vgg.load_weights(weights_lib.q8_weights_path())
    vgg.trainable = False
    names = list(_STYLE) + ["block5_conv2"]
    model = keras.Model(vgg.input, [vgg.get_layer(n).output for n in names])

    def features(image):
        outputs = model(keras.applications.vgg19.preprocess_input(image * 255.0))
        grams = [tf.linalg.einsum("bijc,bijd->bcd", o, o) / tf.cast(tf.shape(o)[1] * tf.shape(o)[2], tf.float32)
                 for o in outputs[:-1]]
        return grams, outputs[-1]

    rng = tf.random.Generator.from_seed(0)
    style_targets, _ = features(rng.uniform([1, size, size, 3]))
    _, content_target = features(rng.uniform([1, size, size, 3]))
    image = tf.Variable(rng.uniform([1, size, size, 3]))
    optimizer = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            grams, content = features(image)
            style_loss = tf.add_n([tf.reduce_mean((g - t) ** 2) for g, t in zip(grams, style_targets)])
            loss = 1e-2 * style_loss / 5 + 1e4 * tf.reduce_mean((content - content_target) ** 2)
            loss += 30 * tf.image.total_variation(image)[0]
        optimizer.apply_gradients([(tape.gradient(loss, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss

    return step


def _tf_nst_step(method, size, weights):
    """method: "adam" or "lbfgs", optionally followed by "+bf16" (mixed_bfloat16) and/or "+xla" (and
    "+pooled", which the parent process turns into the allocator setting), and "+every": every style layer at
    weight 1, the recipe's and the PyTorch peer's work, where transfer's default leaves block5_conv1 out."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import losses, optimize, style_targets, vgg  # pylint: disable=import-outside-toplevel

    optimizer, *options = method.split("+")
    config = vgg.ExtractorConfig(weights=weights, precision="mixed_bfloat16" if "bf16" in options else "float32")
    extractor = vgg.build_extractor(config)
    rng = np.random.default_rng(0)
    content, style = rng.uniform(0, 255, (size, size, 3)), rng.uniform(0, 255, (size, size, 3))
    transfer_config = optimize.TransferConfig(
        optimizer=optimizer, jit_compile="xla" in options,
        loss_weights=optimize.transfer_loss_weights(config.style_layers, layer_weights=(
            [1.0] * len(config.style_layers) if "every" in options else None)))
    style_layers = losses.used_style_layers(config.style_layers, transfer_config.loss_weights)  # as transfer does
    style_grams, content_features = style_targets.compute_targets(
        extractor, content, style, style_layers, config.content_layers)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    image = tf.Variable(optimize.initial_image("content", content, style))
    loss_fn = optimize.make_loss_fn(extractor, style_grams, content_features, transfer_config.loss_weights)
    step = optimize.make_step(image, loss_fn, transfer_config)
    return lambda: step()[0]


def _run_one(spec, steps, weights):
    method, size = spec.split(":")
    size = int(size)
    step = (_tutorial_step(size, weights) if method.split("+")[0] == "tutorial"
            else _tf_nst_step(method, size, weights))
    untimed = 2 + (_HISTORY_STEPS.value if method.split("+")[0] == "lbfgs" else 0)
    for _ in range(untimed):
        float(step())
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = step()
    float(loss)
    ms = 1000 * (time.perf_counter() - start) / steps
    cpu_ms = 1000 * (time.process_time() - cpu_start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "size": size, "ms_per_step": ms, "cpu_ms_per_step": cpu_ms,
                      "peak_rss_mb": peak_mb}))


def main(argv):
    del argv
    if _ONE.value:
        _run_one(_ONE.value, _STEPS.value, _WEIGHTS.value)
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"machine: {machine.describe()}; VGG19 weights {_WEIGHTS.value}; L-BFGS timed after "
          f"{2 + _HISTORY_STEPS.value} steps")
    print("| size | method | ms/step | vs tutorial | vs pytorch | CPU ms/step | CPU vs tutorial | CPU vs pytorch "
          "| peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    # The peers run first, so that every tf_nst row has both ratios.
    # Rows compare with the peers on the same number of threads ('+1t' with '+1t').
    peer = lambda method: method.split("+")[0] in ("tutorial", "pytorch")  # noqa: E731
    methods = sorted(_METHODS.value, key=lambda m: not peer(m))
    for size in _SIZES.value:
        bases = {}
        for method in methods:
            row = _measure(method, size, env)
            if row is None:
                print(f"| {size} | {method} | no torch in --torch_python={_TORCH_PYTHON.value} | | | |", flush=True)
                continue
            threads = "+1t" if "1t" in method.split("+") else ""
            if peer(method):  # the tutorial as written: default allocator
                bases[method] = row
            ratios = {key: [f"{row[key] / bases[name + threads][key]:.2f}x" if name + threads in bases else "-"
                            for name in ("tutorial", "pytorch")] for key in ("ms_per_step", "cpu_ms_per_step")}
            name = method.replace("pytorch", row["method"]) if method.startswith("pytorch") else method
            print(f"| {size} | {name} | {row['ms_per_step']:.0f} | {' | '.join(ratios['ms_per_step'])} | "
                  f"{row['cpu_ms_per_step']:.0f} | {' | '.join(ratios['cpu_ms_per_step'])} | "
                  f"{row['peak_rss_mb']:.0f} |", flush=True)


def _measure(method, size, env):
    """One configuration's JSON row, run in its own process; None for 'pytorch' without torch."""
    if "1t" in method.split("+"):
        env = {**env, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    if method.split("+")[0] == "pytorch":
        if subprocess.run([_TORCH_PYTHON.value, "-c", "import torch"], capture_output=True, check=False).returncode:
            return None
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        command = [_TORCH_PYTHON.value, os.path.join(root, "bench", "torch_gatys.py"), f"--size={size}",
                   f"--steps={_STEPS.value}"]
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))}
    else:
        pooled = "true" if "pooled" in method.split("+") else "false"
        command = [sys.executable, __file__, f"--one={method}:{size}", f"--steps={_STEPS.value}",
                   f"--weights={_WEIGHTS.value}", f"--history_steps={_HISTORY_STEPS.value}"]
        env = {**env, "TF_CPU_ALLOCATOR_USE_BFC": pooled}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    app.run(main)
