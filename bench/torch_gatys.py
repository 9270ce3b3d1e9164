"""A plain PyTorch Gatys transfer step, the peer of bench_transfer.py: run with a Python that has torch.

VGG19 up to block5_conv1 (the deepest layer the default loss uses), frozen; Gram style losses on the first
convolution of each block and a content loss on block4_conv2, each relative to its target's magnitude as
tf_nst.losses computes them, plus total variation; one forward and one backward per step, Adam, clamp to
[0, 255]. The weights are the 8-bit ImageNet VGG19 (tf_nst.weights.dequantize_q8, NumPy only), the ones
tf_nst runs on, so that both do the same arithmetic.

  PYTHONPATH=. /path/to/torch/python bench/torch_gatys.py --size=256 --steps=5    # prints one JSON line
"""

import argparse
import json
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from tf_nst import weights

_BLOCKS = (2, 2, 4, 4, 4)
_STYLE = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
_CONTENT = "block4_conv2"
_BGR_MEAN = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def _load_vgg19():
    """{layer name: (weight [out, in, 3, 3], bias)} up to block5_conv1, frozen."""
    layers = {}
    for name, kernel, bias in weights.dequantize_q8(weights.q8_source()):
        layers[name] = (torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))),
                        torch.from_numpy(bias))
        if name == "block5_conv1":
            return layers
    raise AssertionError("no block5_conv1")


def _features(vgg, image):
    """{layer: activations} of an RGB [1, 3, H, W] image in [0, 255] (Caffe preprocessing, as Keras' VGG)."""
    x = image.flip(1) - _BGR_MEAN
    outputs = {}
    for block, convs in enumerate(_BLOCKS, start=1):
        if block > 1:
            x = F.max_pool2d(x, 2)
        for conv in range(1, convs + 1):
            name = f"block{block}_conv{conv}"
            x = F.relu(F.conv2d(x, *vgg[name], padding=1))
            outputs[name] = x
            if name == "block5_conv1":
                return outputs
    return outputs


def _gram(features):
    _, channels, height, width = features.shape
    flat = features.reshape(channels, height * width)
    return flat @ flat.T / (height * width)


def _relative(value, target):
    return ((value - target) ** 2).sum() / (target ** 2).sum()


def make_step(size, learning_rate=5.0, weights_=(1.0, 5.0, 10.0), pieces=False):
    vgg = _load_vgg19()
    rng = np.random.default_rng(0)
    content, style = (torch.from_numpy(rng.uniform(0, 255, (1, 3, size, size)).astype(np.float32)) for _ in "cs")
    with torch.no_grad():
        style_grams = {name: _gram(f) for name, f in _features(vgg, style).items() if name in _STYLE}
        content_target = _features(vgg, content)[_CONTENT]
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=learning_rate)
    content_weight, style_weight, tv_weight = weights_

    def step():
        optimizer.zero_grad(set_to_none=True)
        features = _features(vgg, image)
        style = sum(_relative(_gram(features[name]), target) for name, target in style_grams.items()) / len(_STYLE)
        scaled = image / 255.0
        tv = ((scaled[:, :, 1:] - scaled[:, :, :-1]) ** 2).mean() + ((scaled[..., 1:] - scaled[..., :-1]) ** 2).mean()
        loss = content_weight * _relative(features[_CONTENT], content_target) + style_weight * style + tv_weight * tv
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0.0, 255.0)
        return loss.detach()

    if not pieces:
        return step

    def forward():
        with torch.no_grad():
            return sum(f.sum() for f in _features(vgg, image).values())

    def loss():
        with torch.no_grad():
            features = _features(vgg, image)
            return sum(_relative(_gram(features[name]), target) for name, target in style_grams.items()) + \
                _relative(features[_CONTENT], content_target)

    def gradient():
        features = _features(vgg, image)
        total = sum(_relative(_gram(features[name]), target) for name, target in style_grams.items()) + \
            _relative(features[_CONTENT], content_target)
        return torch.autograd.grad(total, image)[0]

    return {"forward": forward, "+ loss": loss, "+ gradient": gradient, "adam step": step}


def _time(function, steps):
    for _ in range(2):
        float(function().sum())
    start = time.perf_counter()
    for _ in range(steps):
        result = function()
    float(result.sum())
    return 1000 * (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true", help="time the pieces as bench/profile_step.py does")
    args = parser.parse_args()
    if args.breakdown:
        rows = {name: _time(piece, args.steps) for name, piece in make_step(args.size, pieces=True).items()}
        print(json.dumps({"size": args.size, "threads": torch.get_num_threads(), **rows}))
        return
    step = make_step(args.size)
    for _ in range(2):
        float(step())
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = step()
    float(loss)
    ms = 1000 * (time.perf_counter() - start) / args.steps
    cpu_ms = 1000 * (time.process_time() - cpu_start) / args.steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": f"pytorch {torch.__version__}", "size": args.size, "ms_per_step": ms,
                      "cpu_ms_per_step": cpu_ms, "peak_rss_mb": peak_mb, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
