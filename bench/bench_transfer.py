"""Per-image transfer speed: ms per step and peak memory, tf_nst (Adam, L-BFGS) beside the TF tutorial recipe.

Each configuration runs in its own process (so peak RSS is its own), one after another in this one run, so the
ratios compare like with like on a noisy machine. Random VGG19 weights: speed does not depend on them.
Configurations run with TensorFlow's default CPU allocator unless they end in '+pooled'; `main.py` runs with
the pooled one.

  python bench/bench_transfer.py                  # 256 and 512 px, 10 timed steps each
  python bench/bench_transfer.py --sizes=256 --steps=5
"""

import json
import os
import platform
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

_SIZES = flags.DEFINE_list("sizes", ["256", "512"], "Square image sizes (pixels).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per configuration (after 2 warm-up steps).")
_METHODS = flags.DEFINE_list(
    "methods", ["tutorial", "adam", "lbfgs", "adam+pooled", "lbfgs+pooled", "lbfgs+bf16", "lbfgs+xla"],
    "Configurations: 'tutorial', or 'adam'/'lbfgs' with optional '+bf16' and '+xla'; any of them with "
    "'+pooled' runs with TensorFlow's pooled CPU allocator (TF_CPU_ALLOCATOR_USE_BFC, as main.py sets it), "
    "the others with its default allocator.")
_ONE = flags.DEFINE_string("one", None, "Internal: run one configuration 'method:size' and print JSON.")

_STYLE = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def _tutorial_step(size):
    """The TensorFlow style-transfer tutorial's recipe: Keras VGG19, tf.function, Adam, clip to [0, 1]."""
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    vgg = keras.applications.VGG19(include_top=False, weights=None)
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


def _tf_nst_step(method, size):
    """method: "adam" or "lbfgs", optionally followed by "+bf16" (mixed_bfloat16) and/or "+xla" (and
    "+pooled", which the parent process turns into the allocator setting)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import optimize, style_targets, vgg  # pylint: disable=import-outside-toplevel

    optimizer, *options = method.split("+")
    config = vgg.ExtractorConfig(weights="none", precision="mixed_bfloat16" if "bf16" in options else "float32")
    extractor = vgg.build_extractor(config)
    rng = np.random.default_rng(0)
    content, style = rng.uniform(0, 255, (size, size, 3)), rng.uniform(0, 255, (size, size, 3))
    transfer_config = optimize.TransferConfig(optimizer=optimizer, jit_compile="xla" in options)
    style_grams, content_features = style_targets.compute_targets(
        extractor, content, style, config.style_layers, config.content_layers)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    image = tf.Variable(optimize.initial_image("content", content, style))
    loss_fn = optimize.make_loss_fn(extractor, style_grams, content_features, transfer_config.loss_weights)
    step = optimize.make_step(image, loss_fn, transfer_config)
    return lambda: step()[0]


def _run_one(spec, steps):
    method, size = spec.split(":")
    size = int(size)
    step = _tutorial_step(size) if method.split("+")[0] == "tutorial" else _tf_nst_step(method, size)
    for _ in range(2):
        float(step())
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    ms = 1000 * (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "size": size, "ms_per_step": ms, "peak_rss_mb": peak_mb}))


def _machine():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), platform.processor())
    gpus = tf.config.list_physical_devices("GPU")
    return f"{cpu}, {os.cpu_count()} cores, TF {tf.__version__}, {'GPU' if gpus else 'CPU only'}"


def main(argv):
    del argv
    if _ONE.value:
        _run_one(_ONE.value, _STEPS.value)
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"machine: {_machine()}")
    print("| size | method | ms/step | vs tutorial | peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    for size in _SIZES.value:
        base = None
        for method in _METHODS.value:
            pooled = "true" if "pooled" in method.split("+") else "false"
            out = subprocess.run([sys.executable, __file__, f"--one={method}:{size}", f"--steps={_STEPS.value}"],
                                 capture_output=True, text=True, env={**env, "TF_CPU_ALLOCATOR_USE_BFC": pooled},
                                 check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            base = row if method == "tutorial" else base  # the tutorial as written: default allocator
            ratio = f"{row['ms_per_step'] / base['ms_per_step']:.2f}x" if base else "-"
            print(f"| {size} | {method} | {row['ms_per_step']:.0f} | {ratio} | {row['peak_rss_mb']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    app.run(main)
