"""Mutation testing of the pure modules, each against its own fast tests (TESTING.md, "Mutation testing").

A development tool, not part of the test suite. mutmut 3.8.1 writes the mutants: one trampolined copy of
each module in mutants/, which picks the active mutant at call time from $MUTANT_UNDER_TEST. This script
replaces mutmut's runner. mutmut forks its workers from a process whose tests have run TensorFlow, and
TensorFlow's thread pools do not survive that fork: such mutants hang. Here the parent imports pytest,
TensorFlow, Keras and the package but runs no TensorFlow op; each mutant runs its tests in a child forked
from that parent, with a wall-clock timeout.

    python tools/mutation.py run [MODULE ...] [--mutants NAME ...] [--sample N] [--workers 2]
    python tools/mutation.py results [MODULE ...]      # the table, and the mutants not killed
    python tools/mutation.py show NAME                 # the diff of one mutant

Results go to mutants/mutation/<module>.json (mutants/ is ignored by git).
"""

import argparse
import ast
import dataclasses
import difflib
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = os.path.join(ROOT, "mutants")
RESULTS = os.path.join(MUTANTS, "mutation")
COPIED = ("tf_nst", "export", "tests", "main.py", "setup.cfg", "pyproject.toml")


@dataclasses.dataclass(frozen=True)
class Target:
    path: str
    tests: tuple
    functions: tuple = ()  # only these functions are mutated; all when empty


TARGETS = {
    "losses": Target("tf_nst/losses.py", ("tests/test_losses.py",) + tuple(
        f"tests/test_api.py::test_keras_losses_{name}" for name in (
            "are_lowered_by_fit", "round_trip_their_config", "are_zero_on_identical_images_and_per_image"))),
    "lbfgs": Target("tf_nst/lbfgs.py", ("tests/test_lbfgs.py",)),
    "tiling": Target("tf_nst/tiling.py", ("tests/test_tiling.py",)),
    # The colour-matching functions' own tests live in test_optimize.py.
    "image_io": Target("tf_nst/image_io.py", ("tests/test_image_io.py",) + tuple(
        f"tests/test_optimize.py::test_{name}" for name in (
            "histogram_matching_gives_the_style_the_content_colour_statistics",
            "luminance_matching_equalises_mean_and_spread"))),
    "stylize": Target("tf_nst/stylize.py", ("tests/test_stylize.py",)),
    # The step loop: the loss closure, the compiled Adam / L-BFGS step and the loop over one scale's steps.
    "optimize": Target("tf_nst/optimize.py", tuple(f"tests/test_optimize.py::test_{name}" for name in (
        "adam_changes_the_image_and_the_callback_sees_every_step", "adam_clips_the_variable_itself_to_the_pixel_range",
        "each_finer_scale_starts_from_the_upsampled_coarser_result",
        "blend_with_weights_one_and_zero_equals_the_single_style_run",
        "coarse_to_fine_runs_every_scale_and_ends_at_full_size", "xla_and_bfloat16_steps_run_and_stay_finite",
        "all_ones_content_mask_equals_the_unmasked_run", "where_every_content_mask_is_black_the_content_is_kept",
        "the_lbfgs_step_keeps_the_configured_history", "an_unknown_optimizer_is_a_user_error_naming_the_valid_ones"))
                       + ("tests/test_tiling.py::test_reset_makes_the_optimiser_start_afresh",),
                       ("make_loss_fn", "make_step", "_step_and_reset", "_num_steps", "_optimize_whole")),
}

# Mutants that behave exactly like the original (mutmut's name: why). They count neither as killed nor as
# survivors. The numbers are mutmut's, per function: re-check this list when a listed function changes.
EQUIVALENT = {
    "tf_nst.tiling.x__axis_weights__mutmut_12": "the first tile's ramp at the image's border (before=1): only "
    "that tile covers pixel 0, so dividing by the windows' sum gives it weight 1 all the same",
    "tf_nst.tiling.x__axis_weights__mutmut_18": "the same for the last tile's far edge (after=1)",
    **{f"tf_nst.tiling.x__window__mutmut_{number}": "the ramp divided in float64, stored in the float32 window: "
       "a quotient of small integers rounded once to float32 equals float32's correctly rounded division "
       "(53 >= 2 * 24 + 2 bits)" for number in (10, 13, 25, 29)},
    "tf_nst.losses.xǁ_FeatureLossǁ_features__mutmut_12": "the extractor built without content_layers=layers "
    "also computes the default content layer, which the loss never reads: more work, the same values",
    "tf_nst.lbfgs.xǁLBFGSǁ__init____mutmut_48": "gamma starts at 2, not 1: its first value is only read before a "
    "pair is stored, when the step is rescaled to move the largest coordinate by initial_step; scaling by 2 is exact",
    "tf_nst.lbfgs.xǁLBFGSǁreset__mutmut_4": "reset() restarts the ring buffer at slot 1, not 0: with no pair "
    "stored, where it starts only rotates the slots, which are always read relative to the head",
    "tf_nst.lbfgs.xǁLBFGSǁreset__mutmut_6": "reset() sets gamma to 2, not 1: with no pair stored it only scales "
    "the steepest-descent step, which is rescaled anyway (as for __init__'s mutant 48)",
    "tf_nst.lbfgs.xǁLBFGSǁstep__mutmut_54": "the first step's scale divides by max|direction| - 1e-30, not + 1e-30: "
    "the same float32 number unless max|direction| is within rounding of 1e-30; a zero direction moves nothing "
    "either way",
    "tf_nst.image_io.x_pool_mask__mutmut_32": "the area resize runs even when halving reached the size: an "
    "area resize to the same size returns its input",
    "tf_nst.image_io.x_pool_mask__mutmut_33": "the same (a 3-tuple is never equal to the 2-tuple size)",
    "tf_nst.image_io.x_resize__mutmut_12": "method='bilinear' dropped: it is tf.image.resize's default",
    **{f"tf_nst.image_io.x_read_header__mutmut_{number}": f"little_endian=None for {fmt}'s width and height: "
       "tf.io.decode_raw takes None as its default, True" for number, fmt in ((71, "GIF"), (85, "BMP"))},
    "tf_nst.image_io.x_jpeg_frame_size__mutmut_52": "next_ff's sentinel 256, not 255: where no 0xFF is left the "
    "walk stays put instead of ending, and stops at JPEG_MAX_SEGMENTS steps with the same [0, 0]",
    "tf_nst.image_io.x_match_luminance__mutmut_3": "the source's luminance read from channel 1, not 0: "
    "luminance_image repeats the same luminance in all three channels",
    "tf_nst.stylize.x_stylize_image__mutmut_14": "the image converted to a tensor of its own dtype, not float32: "
    "the Keras model casts its input to float32 itself",
    **{f"tf_nst.tiling.x_blend_into__mutmut_{number}": "the pixels not cast to the image's dtype first: for the "
       "float32 and uint8 pixels the package passes, NumPy computes pixels - base in float32 all the same"
       for number in (8, 10)},
}

KILLED, SURVIVED, TIMEOUT, NOT_COVERED, CRASHED = "killed", "survived", "timeout", "not covered", "crashed"


def _module_name(path):
    return path[:-3].replace("/", ".")


# ---------------------------------------------------------------------------------------------- generation


def _function_lines(source, names):
    """The line numbers of the named top-level functions (and of methods with those names)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _mutated_source(target):
    """mutmut's MutatedFile of the module: the trampolined code and the mutant names."""
    from mutmut.mutation.file_mutation import mutate_file_contents  # pylint: disable=import-outside-toplevel

    with open(os.path.join(ROOT, target.path)) as f:
        source = f.read()
    lines = _function_lines(source, target.functions) if target.functions else None
    return mutate_file_contents(target.path, source, covered_lines=lines)


def generate(names):
    """Copies the tree into mutants/ and writes the mutated modules; returns {module: [mutant names]}."""
    os.makedirs(RESULTS, exist_ok=True)
    for item in COPIED:
        source, copy = os.path.join(ROOT, item), os.path.join(MUTANTS, item)
        if os.path.isdir(source):
            shutil.copytree(source, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy)
    mutants = {}
    for name in names:
        target = TARGETS[name]
        mutated = _mutated_source(target)
        with open(os.path.join(MUTANTS, target.path), "w") as f:
            f.write(mutated.code)
        mutants[name] = [f"{_module_name(target.path)}.{m}" for m in mutated.mutant_names]
    return mutants


# ------------------------------------------------------------------------------------------------- running


def _prepare_parent(workers):
    """Imports what every child needs, without running a TensorFlow op (that is what makes fork unsafe)."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.chdir(MUTANTS)
    sys.path.insert(0, MUTANTS)
    sys.path.insert(0, os.path.join(MUTANTS, "tests"))
    import pytest  # pylint: disable=import-outside-toplevel,unused-import
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras  # pylint: disable=import-outside-toplevel,unused-import
    import tf_nst  # pylint: disable=import-outside-toplevel

    assert tf_nst.__file__.startswith(MUTANTS), f"tf_nst imported from {tf_nst.__file__}, not from mutants/"
    del workers


def _child(mutant, tests, log_path, report_path=None):
    """In a forked child: run `tests` under `mutant` ("" for none, "stats" to record coverage); never returns."""
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ["MUTANT_UNDER_TEST"] = mutant
        import pytest  # pylint: disable=import-outside-toplevel

        plugins = []
        if mutant == "stats":
            plugins.append(_StatsPlugin(report_path))
        # -n0: one process (setup.cfg's addopts would start pytest-xdist workers, outside this fork's timeout).
        code = pytest.main(["--rootdir=.", "-q", "-n0", "-p", "no:cacheprovider", "-p", "no:randomly",
                            "--tb=short"]
                           + ([] if mutant == "stats" else ["-x"])
                           + [arg for test in tests for arg in test.split("\n")], plugins=plugins)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    except BaseException:  # pylint: disable=broad-except
        import traceback  # pylint: disable=import-outside-toplevel

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(70)


class _StatsPlugin:
    """Records which mutated functions each test reaches, and each test's duration."""

    def __init__(self, report_path):
        self.report_path = report_path
        self.current = None
        self.hits = {}
        self.durations = {}
        from mutmut.mutation import trampoline  # pylint: disable=import-outside-toplevel

        trampoline.record_trampoline_hit = self._hit

    def _hit(self, name, caller=None):
        del caller
        if self.current is not None:
            self.hits.setdefault(name, set()).add(self.current)

    def pytest_runtest_logstart(self, nodeid, location):
        del location
        self.current = nodeid

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session, exitstatus):
        del session
        with open(self.report_path, "w") as f:
            json.dump({"exit": int(exitstatus), "durations": self.durations,
                       "hits": {name: sorted(tests) for name, tests in self.hits.items()}}, f, indent=1)


def _fork(mutant, tests, log_path, report_path=None):
    pid = os.fork()
    if pid == 0:
        _child(mutant, tests, log_path, report_path)
    return pid


def _wait(pid, timeout):
    """The child's exit code, or None after killing it at `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.2)


def _status(code):
    if code is None:
        return TIMEOUT
    if code == 0:
        return SURVIVED
    if code in (1, 2, 3):  # failed, collection interrupted (an import error), internal error
        return KILLED
    return CRASHED


def _fingerprint(target):
    """Changes when the module or its test files change (then the coverage is collected again)."""
    files = sorted({test.split("::")[0] for test in target.tests} | {target.path, "tests/conftest.py"})
    digest = hashlib.sha256()
    for path in files:
        with open(os.path.join(ROOT, path), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def _collect_stats(name, target, logs):
    """Runs the module's tests once, unmutated, recording coverage; returns (hits, durations).

    The result is kept in mutants/mutation/<module>.stats.json until the module or its tests change.
    """
    report = os.path.join(RESULTS, f"{name}.stats.json")
    fingerprint = _fingerprint(target)
    if os.path.exists(report):
        with open(report) as f:
            stats = json.load(f)
        if stats.get("fingerprint") == fingerprint:
            return stats["hits"], stats["durations"]
    started = time.monotonic()
    code = _wait(_fork("stats", target.tests, os.path.join(logs, f"{name}.stats.log"), report), 1800)
    if code != 0:
        sys.exit(f"{name}: the unmutated tests did not pass (exit {code}); see {logs}/{name}.stats.log")
    with open(report) as f:
        stats = json.load(f)
    stats["fingerprint"] = fingerprint
    with open(report, "w") as f:
        json.dump(stats, f, indent=1)
    print(f"{name}: clean run in a forked child passed in {time.monotonic() - started:.0f} s", flush=True)
    return stats["hits"], stats["durations"]


def _rerun_tests(name, target, max_seconds):
    """For a rerun of named mutants: every test of the module (new ones too), less the known slow ones.

    Returns (hits, durations) as if every function were reached by that one test selection.
    """
    with open(os.path.join(RESULTS, f"{name}.stats.json")) as f:
        durations = json.load(f)["durations"]
    slow = [test for test, seconds in durations.items() if seconds > max_seconds]
    selection = "\n".join([arg for test in slow for arg in ("--deselect", test)] + list(target.tests))
    # The known tests' time stands for the selection's (for the timeout); _tests_for must not drop it as slow.
    return _AllFunctions(selection), {selection: sum(durations.values()) - sum(map(durations.get, slow))}


class _AllFunctions(dict):
    def __init__(self, selection):
        super().__init__()
        self.selection = selection

    def get(self, key, default=None):
        del key, default
        return [self.selection]


def _tests_for(mutant, hits, durations, max_seconds):
    """The fast tests that reach the mutant's function, fastest first."""
    function = mutant.rsplit("__mutmut_", 1)[0]
    tests = [test for test in hits.get(function, []) if durations.get(test, 0.0) <= max_seconds]
    return sorted(tests, key=lambda test: durations.get(test, 0.0))


def run(names, only, sample, seed, workers, timeout_factor, max_seconds):
    mutants = generate(names)
    _prepare_parent(workers)
    logs = os.path.join(RESULTS, "logs")
    os.makedirs(logs, exist_ok=True)
    for name in names:
        target = TARGETS[name]
        chosen = [m for m in mutants[name] if not only or m in only]
        if sample and sample < len(chosen):
            chosen = sorted(random.Random(seed).sample(chosen, sample), key=mutants[name].index)
        if not chosen:
            continue
        cap = max_seconds
        if only and os.path.exists(os.path.join(RESULTS, f"{name}.stats.json")):
            hits, durations = _rerun_tests(name, target, max_seconds)
            cap = float("inf")  # the slow tests are deselected already
        else:
            hits, durations = _collect_stats(name, target, logs)
        slow = sorted(test for test, seconds in durations.items() if seconds > cap)
        if slow:
            print(f"{name}: left out, slower than {cap} s: {', '.join(slow)}", flush=True)
        path = os.path.join(RESULTS, f"{name}.json")
        results = _load(path) if only else {}
        sampled = bool(sample) or (bool(only) and _load(path, "sampled"))
        queue = list(chosen)
        running = {}
        started = time.monotonic()
        print(f"{name}: {len(chosen)} of {len(mutants[name])} mutants, {workers} workers", flush=True)
        def save():  # after every mutant, so that an interrupted run keeps what it found
            ordered = {m: results[m] for m in mutants[name] if m in results}
            with open(path + ".tmp", "w") as f:
                json.dump({"module": target.path, "total": len(mutants[name]), "sampled": sampled, "seed": seed,
                           "results": ordered}, f, indent=1)
            os.replace(path + ".tmp", path)

        try:
            _run_queue(queue, running, results, hits, durations, workers, timeout_factor, cap, logs, save)
        finally:
            for pid in running:
                os.kill(pid, signal.SIGKILL)
            save()
        print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
        _print_table([name])


def _run_queue(queue, running, results, hits, durations, workers, timeout_factor, max_seconds, logs, save):
    while queue or running:
        while queue and len(running) < workers:
            mutant = queue.pop(0)
            tests = _tests_for(mutant, hits, durations, max_seconds)
            if not tests:
                results[mutant] = {"status": NOT_COVERED, "seconds": 0.0}
                continue
            timeout = 60 + timeout_factor * sum(durations.get(t, 0.0) for t in tests)
            pid = _fork(mutant, tests, os.path.join(logs, f"{mutant}.log"))
            running[pid] = (mutant, time.monotonic(), timeout)
        if _reap(running, results):
            save()


def _reap(running, results):
    """Collects the finished (or timed-out) children; returns whether any did."""
    time.sleep(0.2)
    finished = False
    for pid, (mutant, started, timeout) in list(running.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.monotonic() - started
        if not done and elapsed < timeout:
            continue
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = None
        else:
            code = os.waitstatus_to_exitcode(status)
        del running[pid]
        finished = True
        results[mutant] = {"status": _status(code), "exit": code, "seconds": round(elapsed, 1)}
        if results[mutant]["status"] != KILLED:
            print(f"  {mutant}: {results[mutant]['status']} ({elapsed:.0f} s)", flush=True)
    return finished


# ------------------------------------------------------------------------------------------------- reports


def _load(path, key="results"):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)[key]


def _print_table(names):
    print("| module | mutants | run | killed | survived | equivalent | timeout | crashed | not covered "
          "| surviving (excl. equivalent) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        path = os.path.join(RESULTS, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        results = data["results"]
        count = {s: 0 for s in (KILLED, SURVIVED, TIMEOUT, CRASHED, NOT_COVERED)}
        equivalent = 0
        for mutant, result in results.items():
            if mutant in EQUIVALENT and result["status"] != KILLED:
                equivalent += 1
            else:
                count[result["status"]] += 1
        judged = len(results) - equivalent
        # A timeout (the tests ran 10 times longer than unmutated) and a crash are detections too.
        surviving = count[SURVIVED] + count[NOT_COVERED]
        share = f"{100 * surviving / judged:.1f}%" if judged else "-"
        total = f"{data['total']}" + (" (sample)" if data["sampled"] else "")
        print(f"| {TARGETS[name].path} | {total} | {len(results)} | {count[KILLED]} | {count[SURVIVED]} "
              f"| {equivalent} | {count[TIMEOUT]} | {count[CRASHED]} | {count[NOT_COVERED]} | {share} |")


def results_command(names):
    _print_table(names)
    for name in names:
        for mutant, result in _load(os.path.join(RESULTS, f"{name}.json")).items():
            if result["status"] != KILLED:
                note = f"  equivalent: {EQUIVALENT[mutant]}" if mutant in EQUIVALENT else ""
                print(f"{mutant}: {result['status']}{note}")


def show(mutant):
    module, _, function = mutant.rpartition(".")
    source = _mutated_source([t for t in TARGETS.values() if _module_name(t.path) == module][0]).code
    original = function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in (original, function):
            found[node.name] = ast.get_source_segment(source, node).replace(node.name, "f", 1).splitlines()
    sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(
        found[original], found[function], "original", mutant, lineterm=""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("modules", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    run_parser.add_argument("--mutants", nargs="+", default=(), help="rerun only these mutants")
    run_parser.add_argument("--sample", type=int, default=0, help="a uniform random sample of this many mutants")
    run_parser.add_argument("--seed", type=int, default=0)
    run_parser.add_argument("--workers", type=int, default=2)
    run_parser.add_argument("--max-test-seconds", type=float, default=5.0,
                            help="leave out tests that took longer than this in the clean run")
    run_parser.add_argument("--timeout-factor", type=float, default=10.0,
                            help="a mutant's timeout: 60 s + this times its tests' clean duration")
    results_parser = commands.add_parser("results")
    results_parser.add_argument("modules", nargs="*")
    show_parser = commands.add_parser("show")
    show_parser.add_argument("mutant")
    args = parser.parse_args()
    unknown = [name for name in getattr(args, "modules", ()) if name not in TARGETS]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; use any of {', '.join(TARGETS)}")
    os.chdir(ROOT)
    if args.command == "run":
        os.nice(19)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # children are killed on the way out
        run(args.modules or list(TARGETS), set(args.mutants), args.sample, args.seed, args.workers,
            args.timeout_factor, args.max_test_seconds)
    elif args.command == "results":
        results_command(args.modules or list(TARGETS))
    else:
        show(args.mutant)


if __name__ == "__main__":
    main()
