"""Tiling for high resolution: the tile layout and blend, tiled transfer (seams on real features), memory, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import skimage_rgb
from test_cli import assert_user_error, run_cli
from tf_nst import image_io, losses, optimize, style_targets, tiling, vgg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _coverage(tiles, height, width):
    count = np.zeros((height, width), int)
    for tile in tiles:
        count[tile.window] += 1
    return count


@pytest.mark.parametrize("height,width,tile_size,overlap,grid", [
    (192, 192, 112, 32, (2, 2)),
    (681, 1024, 256, 64, (4, 5)),
    (50, 300, 64, 16, (1, 6)),  # a side shorter than a tile: one tile of that side
    (256, 256, 256, 64, (1, 1)),
    (161, 161, 100, 40, (3, 3)),  # two tiles cannot reach: three, and the middle one is covered three times
    (4096, 2731, 512, 64, (9, 6)),
])
def test_tiles_cover_the_image_at_full_size_overlapping_by_at_least_the_overlap(height, width, tile_size, overlap,
                                                                                grid):
    tiles = tiling.tile_layout(height, width, tile_size, overlap)
    assert len(tiles) == grid[0] * grid[1]
    assert _coverage(tiles, height, width).min() >= 1
    for tile in tiles:
        assert (tile.height, tile.width) == (min(height, tile_size), min(width, tile_size))
        assert tile.top >= 0 and tile.left >= 0 and tile.top + tile.height <= height and tile.left + tile.width <= width
    assert [(t.top, t.left) for t in tiles] == sorted((t.top, t.left) for t in tiles)  # raster order
    for length, starts in ((height, tiling.tile_starts(height, tile_size, overlap)),
                           (width, tiling.tile_starts(width, tile_size, overlap))):
        shared = [before + min(length, tile_size) - after for before, after in zip(starts, starts[1:])]
        assert all(value >= overlap for value in shared), shared
        if length > tile_size:  # the fewest tiles: one less could not reach the border with that overlap
            assert (len(starts) - 2) * (tile_size - overlap) + tile_size < length
    assert sorted({t.top for t in tiles}) == tiling.tile_starts(height, tile_size, overlap)
    assert sorted({t.left for t in tiles}) == tiling.tile_starts(width, tile_size, overlap)


@pytest.mark.parametrize("height,width,tile_size,overlap", [
    (192, 192, 112, 32), (300, 170, 64, 16), (161, 161, 100, 40), (90, 200, 64, 0)])
def test_blend_weights_are_a_partition_of_unity_that_fades_out_at_cut_edges(height, width, tile_size, overlap):
    tiles = tiling.tile_layout(height, width, tile_size, overlap)
    total = np.zeros((height, width), np.float32)
    for tile in tiles:
        weight = tiling.blend_weight(tile)
        assert weight.shape == (tile.height, tile.width) and weight.min() > 0 and weight.max() <= 1 + 1e-6
        assert weight.dtype == np.float32  # Tile's documented dtype: a float64 weight would double a blend's memory
        total[tile.window] += weight
        for edge, at_border in ((tile.row_weights[0], tile.top == 0),
                                (tile.row_weights[-1], tile.top + tile.height == height),
                                (tile.column_weights[0], tile.left == 0),
                                (tile.column_weights[-1], tile.left + tile.width == width)):
            if at_border:  # no other tile reaches the image's border
                assert edge == pytest.approx(1.0)
            else:  # a cut edge: the tile fades out there (with no ramp, overlap 0, the tiles share it evenly)
                assert edge <= (1 / (overlap + 1) if overlap else 0.5) + 1e-6
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    if overlap and tile_size == 112:  # exactly `overlap` shared: a linear cross-fade over it
        np.testing.assert_allclose(tiling.blend_weight(tiles[1])[0, :32], np.arange(1, 33) / 33, rtol=1e-6)


def test_blending_assembles_the_tiles_without_steps():
    tiles = tiling.tile_layout(150, 200, 64, 16)
    rng = np.random.default_rng(0)
    image, base = rng.uniform(0, 255, (150, 200, 3)).astype(np.float32), rng.uniform(0, 255, (150, 200, 3))
    base = base.astype(np.float32)
    # Tiles that agree give back their image, and nothing of the base remains.
    assembled = base.copy()
    for tile in tiles:
        tiling.blend_into(assembled, base, image[tile.window], tile)
    np.testing.assert_allclose(assembled, image, atol=1e-3)
    # Tiles that disagree (constant k for the k-th tile) meet in ramps: no step larger than the ramp's.
    assembled, zeros = np.zeros_like(base), np.zeros_like(base)
    for value, tile in enumerate(tiles):
        tiling.blend_into(assembled, zeros, np.full((tile.height, tile.width, 3), value, np.float32), tile)
    largest_jump = max(abs(a - b) for a in range(len(tiles)) for b in range(len(tiles)))
    for axis in (0, 1):
        assert np.abs(np.diff(assembled, axis=axis)).max() <= largest_jump / (16 + 1) + 1e-4


@pytest.mark.parametrize("tile_size,overlap,valid", [
    (64, 31, True), (512, 64, True), (64, 0, True), (64, 32, False), (63, 0, False), (100, 64, False),
    (128, -1, False)])
def test_check_tiling(tile_size, overlap, valid):
    if valid:
        tiling.check_tiling(tile_size, overlap)
    else:
        with pytest.raises(tiling.UserInputError, match=f"tile size {tile_size} with overlap {overlap}"):
            tiling.check_tiling(tile_size, overlap)


@pytest.mark.parametrize("tile_size,overlap,smallest", [(100, 64, 129), (64, 32, 65), (128, -1, 1)])
def test_check_tiling_names_the_smallest_tile_that_fits_the_overlap(tile_size, overlap, smallest):
    """Guards the message's arithmetic (mutation testing found it unchecked): 2 * overlap + 1 px, at least 1."""
    message = rf"needs at least {tiling.MIN_TILE_SIZE} px .*\({smallest} px or more\)"
    with pytest.raises(tiling.UserInputError, match=message):
        tiling.check_tiling(tile_size, overlap)


@pytest.fixture(scope="module")
def random_case():
    config = vgg.ExtractorConfig(backbone="vgg16", weights="none", style_layers=("block1_conv1", "block2_conv1"),
                                 content_layers=("block2_conv1",))
    rng = np.random.default_rng(1)
    content, style = (rng.uniform(0, 255, shape).astype(np.float32) for shape in ((64, 112, 3), (40, 50, 3)))
    return vgg.build_extractor(config), config, content, style


def test_style_grams_in_pieces_equal_the_whole_image_ones():
    """Pieces see 64 px of context, the receptive field of every default style layer up to block5_conv1's."""
    config = vgg.ExtractorConfig(backbone="vgg16", weights="none")
    extractor = vgg.build_extractor(config)
    style = np.random.default_rng(2).uniform(0, 255, (203, 150, 3)).astype(np.float32)
    mask = np.zeros(style.shape[:2], np.float32)
    mask[40:150, 20:90] = 1
    for region in (None, mask):
        whole = style_targets.style_grams(extractor, style, config.style_layers, region)
        pieces = style_targets.style_grams(extractor, style, config.style_layers, region, piece_size=64)
        for name in config.style_layers:
            np.testing.assert_allclose(pieces[name], whole[name], rtol=1e-4, atol=1e-6 * float(tf.norm(whole[name])))
    bottom = np.zeros(style.shape[:2], np.float32)
    bottom[195:] = 1  # below block5_conv1's last row of 16 px cells, which ends at 192
    for piece_size in (None, 64):
        with pytest.raises(optimize.UserInputError, match=r"vanishes at block5_conv1 \(9x12 cells\)"):
            style_targets.style_grams(extractor, style, config.style_layers, bottom, piece_size=piece_size)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_reset_makes_the_optimiser_start_afresh(random_case, optimizer):
    extractor, config, content, style = random_case
    transfer_config = optimize.resolve_loss_weights(
        optimize.TransferConfig(optimizer=optimizer, learning_rate=20.0), config.style_layers)
    grams, features = style_targets.compute_targets(extractor, content, style, config.style_layers, config.content_layers)
    start = optimize.initial_image("noise", content, style)
    image = tf.Variable(start)
    step, reset = optimize._step_and_reset(  # pylint: disable=protected-access
        image, optimize.make_loss_fn(extractor, grams, features, transfer_config.loss_weights), transfer_config)
    runs = []
    for _ in range(2):
        image.assign(start)
        reset()
        runs.append([float(step()[0]) for _ in range(3)] + [image.numpy()])
    np.testing.assert_allclose(runs[1][:3], runs[0][:3], rtol=1e-5)
    np.testing.assert_allclose(runs[1][3], runs[0][3], atol=1e-2)


def test_tiled_transfer_traces_once_and_reports_steps_across_tiles(random_case, monkeypatch):
    extractor, config, content, style = random_case
    traced, tiles, steps = [], [], []
    combined_loss = losses.combined_loss
    monkeypatch.setattr(losses, "combined_loss", lambda *args: traced.append(1) or combined_loss(*args))
    transfer_config = optimize.TransferConfig(num_steps=2, tile_size=64, tile_overlap=16, num_scales=1)
    result = optimize.transfer(
        extractor, content, style, transfer_config, config.style_layers, config.content_layers,
        callback=lambda step, terms, image: steps.append((step, tuple(image.shape), sorted(terms))),
        tile_callback=lambda index, count: tiles.append((index, count, len(traced))))
    assert result.shape == content.shape and result.dtype == np.uint8
    assert [t[:2] for t in tiles] == [(1, 2), (2, 2)]  # 112 px wide: tiles at 0 and 48
    assert steps == [(i, (1, 64, 64, 3), ["content", "style", "total", "tv"]) for i in (1, 2, 3, 4)]
    assert optimize.count_steps(*content.shape[:2], transfer_config) == 4
    assert tiles[1][2] == len(traced) > 0  # the step traced for tile 1 served tile 2 without tracing again
    assert not np.array_equal(result, np.round(content).astype(np.uint8))


def test_tiles_with_content_masks_and_colour_control(random_case):
    extractor, config, content, style = random_case
    left = np.zeros(content.shape[:2], np.float32)
    left[:, :40] = 1
    run = lambda masks, **options: optimize.transfer(
        extractor, content, style, optimize.TransferConfig(**{
            "num_steps": 3, "tile_size": 64, "tile_overlap": 16, "init": "content", "num_scales": 1,
            "content_masks": masks, "loss_weights": losses.LossWeights(tv=0.0), **options}),
        config.style_layers, config.content_layers).astype(np.float32)
    np.testing.assert_array_equal(run((np.zeros_like(left),)), np.round(content))  # no style anywhere
    change = np.abs(run((left,)) - content).mean(axis=(0, 2))
    assert change[:40].mean() > 1.0 and change[64:].max() < 0.5, change  # the last tile has no style
    for mode in ("luminance", "histogram"):
        result = run((left,), preserve_color=mode, optimizer="adam", num_scales=2, coarse_steps=1)
        assert result.shape == content.shape and np.isfinite(result).all()


def _steps_at_edges_and_inside(image, starts, tile_size):
    """Mean |difference| of neighbouring rows and columns across the tiles' cut edges, and inside the tiles.

    The cut edges are each overlap's first and last line, where a tile's pixels would meet its neighbour's
    without blending; "inside" is every pair of lines outside the overlaps.
    """
    image = np.asarray(image, np.float32)
    across, inside = [], []
    for axis in (0, 1):
        steps = np.abs(np.diff(image, axis=axis)).mean(axis=(1 - axis, 2))  # steps[i]: line i to line i + 1
        shared = np.zeros(image.shape[axis], bool)
        for before, after in zip(starts, starts[1:]):
            shared[after:before + tile_size] = True
            across += [steps[after - 1], steps[before + tile_size - 1]]
        inside += [step for i, step in enumerate(steps) if not shared[i] and not shared[i + 1]]
    return float(np.mean(across)), float(np.mean(inside))


def _gram_distance(extractor, image, style, layers):
    features, style_features = extractor(tf.cast(image, tf.float32)[None]), extractor(tf.cast(style, tf.float32)[None])
    return np.mean([float(tf.norm(losses.gram_matrix(features[name]) - losses.gram_matrix(style_features[name]))
                          / tf.norm(losses.gram_matrix(style_features[name]))) for name in layers])


def test_four_tiles_on_real_features_leave_no_seam(vgg19_q8_weights):
    """A 192 px image in 2 x 2 tiles of 112 px (overlap 32): the tile edges are no sharper than the tiles.

    The photo itself is not uniform (the eyes and nose lie near the middle, where the tiles meet), so the
    sharpness ratio across / inside is compared with the content's own at the same lines. Pasting the same
    optimised tiles without the blend shows the seams this measures.
    """
    config = vgg.ExtractorConfig(backbone="vgg19", weights=vgg19_q8_weights)
    extractor = vgg.build_extractor(config)
    cat = skimage_rgb("chelsea")
    side = cat.shape[0]
    content = image_io.resize(cat[:, (cat.shape[1] - side) // 2:][:, :side], (192, 192)).numpy()
    style = image_io.resize_max_side(skimage_rgb("coffee"), 192).numpy()
    tiles = tiling.tile_layout(192, 192, 112, 32)
    starts = tiling.tile_starts(192, 112, 32)
    assert len(tiles) == 4 and starts == [0, 80]
    optimised, current = {}, []
    result = optimize.transfer(
        extractor, content, style,
        optimize.TransferConfig(num_steps=30, tile_size=112, tile_overlap=32, init="content", num_scales=1,
                                loss_weights=losses.LossWeights(content=1.0, style=3.0, tv=0.0)),
        config.style_layers, config.content_layers,
        callback=lambda step, terms, image: optimised.__setitem__(current[-1], image[0].numpy()),
        tile_callback=lambda index, count: current.append(index))
    pasted = content.copy()
    for index, tile in enumerate(tiles, start=1):
        pasted[tile.window] = optimised[index]

    ratios = {}
    for name, image in (("content", content), ("tiled", result), ("pasted", pasted)):
        across, inside = _steps_at_edges_and_inside(image, starts, 112)
        ratios[name] = across / inside
        ratios[f"{name} grey levels"] = (round(across, 2), round(inside, 2))
    measured = f"|step| across tile edges / inside tiles: {ratios}"
    print(measured)
    assert ratios["tiled"] <= 1.1 * ratios["content"], measured  # measured: 1.14 vs the content's 1.15
    assert ratios["pasted"] > 1.1 * ratios["content"], measured  # measured: 1.58: the check sees seams
    before = _gram_distance(extractor, content, style, config.style_layers)
    after = _gram_distance(extractor, result, style, config.style_layers)
    print(f"Gram distance {before:.3f} -> {after:.3f}")
    assert after < 0.6 * before, (before, after)  # measured: 0.76 -> 0.42


_PEAK_RSS_SCRIPT = """
import json, os, resource, sys
from tf_nst import SAMPLES_DIR, image_io, optimize, vgg
size, tile_size = int(sys.argv[1]), int(sys.argv[2])
config = vgg.ExtractorConfig(backbone="vgg16", weights="none", style_layers=("block1_conv1", "block2_conv1"),
                             content_layers=("block2_conv2",))
extractor = vgg.build_extractor(config)
content, style = (image_io.resize_max_side(image_io.read_image(os.path.join(SAMPLES_DIR, name)), size)
                  for name in ("chelsea.jpg", "hubble_deep_field.jpg"))
transfer_config = optimize.TransferConfig(num_steps=1, tile_size=tile_size, num_scales=1)
result = optimize.transfer(extractor, content, style, transfer_config, config.style_layers, config.content_layers)
print(json.dumps({"shape": result.shape, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _peak_rss(size, tile_size):
    result = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(size), str(tile_size)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_peak_memory_follows_the_tile_not_the_image():
    """1024 px (20 tiles) against 512 px (6 tiles) in 256 px tiles, one L-BFGS step each at one scale (coarse to
    fine would only add time), style at full size.

    Without tiles the 1024 px run of this script peaks at 4.1 GB against 1.1 GB in tiles (measured once), so a
    buffer that grew with the image would show here.
    """
    small, large = _peak_rss(512, 256), _peak_rss(1024, 256)
    assert small["shape"] == [341, 512, 3] and large["shape"] == [681, 1024, 3]
    measured = f"peak RSS: {small['peak_mb']:.0f} MB at 512 px, {large['peak_mb']:.0f} MB at 1024 px"
    assert large["peak_mb"] < 1.25 * small["peak_mb"] + 200, measured  # measured: 1054 and 1130 MB


def test_cli_refuses_a_tile_that_does_not_fit_its_overlap(image_files, tmp_path):
    out = str(tmp_path / "out.png")
    for flags, fragments in ((["--tile_size=100"], ["--tile_size=100 with --tile_overlap=64", "--tile_size=129"]),
                             (["--tile_size=32", "--tile_overlap=8"], ["--tile_size=32", "at least 64 px"])):
        result = run_cli(f"--content={image_files['content']}", f"--style={image_files['style']}",
                         f"--output={out}", "--weights=none", "--image_size=32", "--num_steps=1", *flags)
        assert_user_error(result, *fragments)
        assert not os.path.exists(out)
    result = run_cli(f"--content={image_files['content']}", f"--style={image_files['style']}", f"--output={out}",
                     "--weights=none", "--image_size=96", "--num_steps=1", "--tile_size=64", "--tile_overlap=16",
                     "--save_every=1")
    assert_user_error(result, "--save_every=1 does not work with tiles")
    assert not os.path.exists(out)


def test_cli_tiled_run_writes_the_whole_image_with_tile_progress(image_files, tmp_path):
    out = str(tmp_path / "out.png")
    result = run_cli(f"--content={image_files['content']}", f"--style={image_files['style']}", f"--output={out}",
                     "--weights=none", "--image_size=96", "--num_steps=2", "--tile_size=64", "--tile_overlap=16",
                     "--print_every=1", "--num_scales=1")
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (96, 64)  # the 160x106 test image at 96 px: 2 tiles of 64 x 64
    assert "4 lbfgs steps over 1 scale(s) in 2 tiles of 64 px" in result.stdout
    step_lines = [line.split()[1:4] for line in result.stdout.splitlines() if line.startswith("step ")]
    assert step_lines == [["1/4", "tile", "1/2"], ["2/4", "tile", "1/2"], ["3/4", "tile", "2/2"],
                          ["4/4", "tile", "2/2"]]
