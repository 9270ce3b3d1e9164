"""Valid values of the transfer flags through `python main.py`: each run shows the flag's effect.

Tiny runs (32-48 px, random VGG weights, a step or a few) in subprocesses, compared with each other.
"""

import os
import re

import numpy as np
import pytest
from PIL import Image

from test_cli import run_cli

TINY = ["--weights=none", "--image_size=32", "--print_every=1"]


@pytest.fixture(name="paths")
def fixture_paths(tmp_path, image_files):
    return {**image_files, "dir": tmp_path}


def _transfer(paths, name, *flags):
    """Runs one transfer; returns (output as int array, {step: {term: value}}, stdout)."""
    output = str(paths["dir"] / f"{name}.png")
    result = run_cli(f"--content={paths['content']}", f"--style={paths['style']}", f"--output={output}", *TINY,
                     *flags)
    assert result.returncode == 0, result.stderr
    terms = {}
    for line in result.stdout.splitlines():
        match = re.match(r"step +(\d+)/\d+ +(.*?)  \d+ ms/step", line)
        if match:
            pairs = re.findall(r"(\w+) ([-\d.e+]+)", match.group(2))
            terms[int(match.group(1))] = {key: float(value) for key, value in pairs}
    return np.asarray(Image.open(output).convert("RGB"), np.int32), terms, result.stdout


def test_loss_weights_scale_their_terms(paths):
    """The printed terms are weighted: at the same start image, doubling a weight doubles its term."""
    start = ["--init=noise", "--seed=3", "--num_steps=1", "--optimizer=adam"]
    _, base, _ = _transfer(paths, "base", *start, "--content_weight=1", "--style_weight=1", "--tv_weight=1")
    _, scaled, _ = _transfer(paths, "scaled", *start, "--content_weight=2", "--style_weight=3", "--tv_weight=4")
    for name, factor in (("content", 2), ("style", 3), ("tv", 4)):
        assert base[1][name] > 0
        assert scaled[1][name] == pytest.approx(factor * base[1][name], rel=2e-3), name


def test_style_layer_weights_pick_the_layers(paths):
    """Weights 1,0 over two layers give the style term of the first layer alone; 0,1 a different one."""
    layers = "--style_layers=block1_conv1,block2_conv1"
    start = ["--init=noise", "--num_steps=1", "--optimizer=adam"]
    _, first_only, _ = _transfer(paths, "first", *start, layers, "--style_layer_weights=1,0")
    _, alone, _ = _transfer(paths, "alone", *start, "--style_layers=block1_conv1")
    _, second_only, _ = _transfer(paths, "second", *start, layers, "--style_layer_weights=0,1")
    assert first_only[1]["style"] == pytest.approx(alone[1]["style"], rel=1e-4)
    assert abs(second_only[1]["style"] - first_only[1]["style"]) > 0.01 * first_only[1]["style"]


def test_init_style_file_and_noise_with_seed(paths):
    """With a vanishing Adam step the output is the starting image: the style, a file, or seeded noise."""
    still = ["--num_steps=1", "--optimizer=adam", "--learning_rate=1e-6"]
    from_style, _, _ = _transfer(paths, "from_style", *still, "--init=style")
    style = np.asarray(Image.open(paths["style"]).convert("RGB").resize(from_style.shape[1::-1], Image.BILINEAR),
                       np.int32)
    content = np.asarray(Image.open(paths["content"]).convert("RGB").resize(from_style.shape[1::-1],
                                                                          Image.BILINEAR), np.int32)
    assert np.abs(from_style - style).mean() < 0.25 * np.abs(from_style - content).mean()

    start_file = str(paths["dir"] / "start.png")
    Image.fromarray(np.full((20, 30, 3), (200, 30, 90), np.uint8)).save(start_file)
    from_file, _, _ = _transfer(paths, "from_file", *still, f"--init={start_file}")
    assert np.abs(from_file - np.array([200, 30, 90])).max() <= 1

    noise_a, _, _ = _transfer(paths, "noise_a", *still, "--init=noise", "--seed=1")
    noise_b, _, _ = _transfer(paths, "noise_b", *still, "--init=noise", "--seed=1")
    noise_c, _, _ = _transfer(paths, "noise_c", *still, "--init=noise", "--seed=2")
    np.testing.assert_array_equal(noise_a, noise_b)
    assert np.abs(noise_a - noise_c).mean() > 10 and noise_a.std() > 20


def test_learning_rate_and_lbfgs_history_change_the_run(paths):
    one_from_content = ["--init=content", "--num_scales=1"]
    small, _, _ = _transfer(paths, "small_lr", "--num_steps=3", "--optimizer=adam", "--learning_rate=0.01",
                            *one_from_content)
    large, _, _ = _transfer(paths, "large_lr", "--num_steps=3", "--optimizer=adam", "--learning_rate=20",
                            *one_from_content)
    content = np.asarray(Image.open(paths["content"]).convert("RGB").resize(small.shape[1::-1], Image.BILINEAR),
                         np.int32)
    assert np.abs(small - content).mean() < 2 < 10 < np.abs(large - content).mean()
    _, short, _ = _transfer(paths, "history1", "--num_steps=6", "--lbfgs_history=1", *one_from_content)
    _, long, _ = _transfer(paths, "history50", "--num_steps=6", "--lbfgs_history=50", *one_from_content)
    assert short[1] == long[1]  # the same first step (no curvature pairs yet) ...
    assert short[6]["total"] != long[6]["total"]  # ... then the history matters


def test_scale_factor_sets_the_coarse_size(paths):
    """A snapshot of every step shows the size each step ran at: 1/4 of 48 px first with --scale_factor=4."""
    _, _, stdout = _transfer(paths, "scaled", "--image_size=48", "--num_scales=2", "--scale_factor=4",
                             "--coarse_steps=1", "--num_steps=1", "--save_every=1", "--optimizer=adam",
                             "--style_layers=block1_conv1", "--content_layers=block2_conv1")
    assert "2 scale(s)" in stdout
    assert Image.open(paths["dir"] / "scaled_step00001.png").size == (12, 8)
    assert Image.open(paths["dir"] / "scaled.png").size == (48, 32)


def test_content_detail_sets_the_finer_scales_start(paths):
    """With a vanishing Adam step the output is the finest scale's start: from the content over 2 scales, the
    content again with --content_detail (the default), its coarse copy upsampled (blurred) without."""
    still = ["--image_size=48", "--num_steps=1", "--coarse_steps=1", "--optimizer=adam", "--learning_rate=1e-6",
             "--init=content", "--num_scales=2", "--scale_factor=4", "--style_layers=block1_conv1",
             "--content_layers=block1_conv1"]
    detail, _, _ = _transfer(paths, "detail", *still)
    blurred, _, _ = _transfer(paths, "blurred", *still, "--nocontent_detail")
    content = np.asarray(Image.open(paths["content"]).convert("RGB").resize(detail.shape[1::-1], Image.BILINEAR),
                         np.int32)
    from_detail, from_blurred = np.abs(detail - content).mean(), np.abs(blurred - content).mean()
    assert from_detail < 0.3 * from_blurred, (from_detail, from_blurred)


def test_pooling_and_colour_transform_change_the_result(paths):
    base = ["--num_steps=2", "--style_layers=block3_conv1", "--content_layers=block3_conv1"]
    max_pool, max_terms, _ = _transfer(paths, "max", *base)
    avg_pool, avg_terms, _ = _transfer(paths, "avg", *base, "--pooling=avg")
    assert max_terms[1]["style"] != avg_terms[1]["style"] and np.abs(max_pool - avg_pool).max() > 0
    chol, _, _ = _transfer(paths, "chol", "--num_steps=2", "--preserve_color=histogram", "--color_transform=chol")
    sym, _, _ = _transfer(paths, "sym", "--num_steps=2", "--preserve_color=histogram", "--color_transform=sym")
    assert np.abs(chol - sym).max() > 0


def test_precision_and_xla_agree_with_float32(paths):
    """mixed_bfloat16 and XLA compute the same transfer as plain float32, within their rounding."""
    run = ["--num_steps=3", "--optimizer=adam", "--learning_rate=10", "--precision=float32"]
    plain, plain_terms, _ = _transfer(paths, "plain", *run)
    xla, xla_terms, xla_out = _transfer(paths, "xla", *run, "--jit_compile")
    bf16, bf16_terms, bf16_out = _transfer(paths, "bf16", *run, "--precision=mixed_bfloat16")
    assert "with XLA" in xla_out and "mixed_bfloat16" in bf16_out
    assert xla_terms[3]["total"] == pytest.approx(plain_terms[3]["total"], rel=1e-3)
    assert np.abs(xla - plain).max() <= 1
    assert bf16_terms[1]["total"] == pytest.approx(plain_terms[1]["total"], rel=0.05)
    content = np.asarray(Image.open(paths["content"]).convert("RGB").resize(plain.shape[1::-1], Image.BILINEAR),
                         np.int32)
    # Adam's first steps follow the gradients' signs, which 8-bit mantissas flip where gradients are tiny.
    assert np.abs(bf16 - plain).mean() < 0.3 * np.abs(plain - content).mean()


def test_precision_auto_runs_what_it_stands_for_here_and_says_so(paths):
    """The default, --precision=auto, is precision.resolve's choice for this machine (mixed_bfloat16 on a CPU-only
    machine with native bfloat16, else float32), named in the first line; a named precision runs as given."""
    from tf_nst import precision  # pylint: disable=import-outside-toplevel

    chosen = precision.resolve("auto")
    other = "float32" if chosen == "mixed_bfloat16" else "mixed_bfloat16"
    run = ["--num_steps=2", "--optimizer=adam", "--learning_rate=10"]
    auto, auto_terms, auto_out = _transfer(paths, "auto", *run)
    named, named_terms, named_out = _transfer(paths, "named", *run, f"--precision={chosen}")
    _, other_terms, other_out = _transfer(paths, "other", *run, f"--precision={other}")
    assert f"style(s), {chosen} (--precision=auto), " in auto_out
    assert f"style(s), {chosen}, " in named_out and f"style(s), {other}, " in other_out
    assert auto_terms == named_terms and other_terms != named_terms
    np.testing.assert_array_equal(auto, named)


def test_flagfile_equals_the_flags_inline(paths):
    flags = ["--num_steps=3", "--optimizer=adam", "--style_weight=7", "--tv_weight=2", "--init=noise", "--seed=5"]
    flagfile = paths["dir"] / "settings.cfg"
    flagfile.write_text("\n".join(flags) + "\n")
    inline, inline_terms, _ = _transfer(paths, "inline", *flags)
    from_file, file_terms, _ = _transfer(paths, "from_file", f"--flagfile={flagfile}")
    np.testing.assert_array_equal(inline, from_file)
    assert inline_terms == file_terms and os.path.getsize(flagfile) > 0


def test_tolerance_stops_a_converged_run_and_says_so(paths):
    """A loose --tolerance ends the run before --num_steps with a 'converged' progress line; 0 runs every step."""
    pinned = ["--style_weight=5", "--tv_weight=10"]  # losses.LossWeights()'s: the curve decides the stop
    # 100 steps: the curve's last 5% over 20 steps came at step 62-65 on a Xeon (bfloat16 and float32), past the
    # 60 that sufficed on the earlier AMD EPYC.
    _, terms, stdout = _transfer(paths, "loose", "--num_steps=100", "--tolerance=0.05", "--print_every=1", *pinned)
    (line,) = [line for line in stdout.splitlines() if "converged" in line]
    stopped = int(re.match(r"step +(\d+)/100 ", line).group(1))
    assert 20 < stopped < 100 and "(< --tolerance=0.05)" in line
    # One line per step: the step that converges is printed once, with the note, and is the last.
    assert [int(step) for step in re.findall(r"^step +(\d+)/100 ", stdout, re.M)] == list(range(1, stopped + 1))
    _, _, stdout = _transfer(paths, "strict", "--num_steps=30", "--tolerance=0", "--print_every=0")
    assert "converged" not in stdout and re.search(r"^step 30/30 ", stdout, re.M)


def test_num_scales_auto_follows_the_image_size(paths):
    """--num_scales=auto (the default): one scale at 48 px; three at 200 px, the first at a quarter of the size."""
    cheap = ["--num_steps=1", "--coarse_steps=1", "--optimizer=adam", "--style_layers=block1_conv1",
             "--content_layers=block1_conv1", "--init=noise"]  # a start from the pretrained picture is one scale
    _, _, stdout = _transfer(paths, "small", "--image_size=48", "--num_scales=auto", *cheap)
    assert "1 scale(s)" in stdout
    _, _, stdout = _transfer(paths, "large", "--image_size=200", "--save_every=1", *cheap)
    assert "3 scale(s)" in stdout
    assert Image.open(paths["dir"] / "large_step00001.png").size[0] == 50
