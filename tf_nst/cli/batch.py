"""`batch`: stylises images with an exported SavedModel as an Apache Beam job (export/batch.py).

--input is an image file, a folder or a glob, local or on any Beam filesystem (gs:// with apache-beam[gcp]).

Flags that tf-nst does not define are Beam pipeline options and pass through to Beam: --direct_num_workers=2
and --direct_running_mode=multi_processing locally; --project, --region and --temp_location on Dataflow;
--flink_master on Flink; --job_endpoint for Spark's job server. Outputs are named as `stylize` names them;
outputs that exist are skipped, so a rerun resumes. Files that fail are listed in
<output_dir>/_failures.jsonl and make the exit status 1; the counters stylized, failed and skipped are printed
at the end. Needs the [beam] extra (pip install -e ".[beam]").

An arbitrary-style export (train --architecture=adain, then export) takes --style (comma-separated files are
blended, --style_blend_weights), with --alpha and --preserve_color=luminance; every image gets that style. The
model's kind is read from its saved_model.pb before TensorFlow loads. A magenta-26 export takes
--builtin_style (an index, or index:weight pairs), with --strength and --preserve_color=luminance.
"""

import os
import sys

from absl import flags
from absl import logging

from tf_nst import files
from tf_nst import optional
from tf_nst import outputs
from tf_nst import pretrained
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

_MODEL = flag_groups.define_model()
_INPUT = flag_groups.define_input()
_OUTPUT_DIR = flag_groups.define_output_dir()
_MAX_SIZE = flag_groups.define_max_size()
_PRESERVE_COLOR = flag_groups.define_preserve_color()
_STYLE = flag_groups.define_style()
_STYLE_BLEND_WEIGHTS = flag_groups.define_style_blend_weights()
_ALPHA = flag_groups.define_alpha()
_BUILTIN_STYLE = flag_groups.define_builtin_style()
_RUNNER = flags.DEFINE_string(
    "runner", "FnApiRunner",
    "The Beam runner: FnApiRunner (in this process, offline; the default because Beam's own default, the "
    "DirectRunner, first downloads the Prism runner), DataflowRunner, FlinkRunner, SparkRunner, "
    "PortableRunner.")
_STRENGTH = flags.DEFINE_float(
    "strength", 1.0, "One-style exports: 0 gives the content back, 1 the stylised image; in between, a linear mix "
    "(an arbitrary-style export takes --alpha).",
    lower_bound=0.0, upper_bound=1.0)

flags.adopt_module_key_flags(flag_groups)

# Flags that only an arbitrary-style export reads; --strength only a one-style one.
_STYLE_FLAGS = (_STYLE, _STYLE_BLEND_WEIGHTS, _ALPHA)


def parse_flags(argv):
    """tf-nst's flags; the others stay in argv for Beam."""
    return common.parse_known_flags(argv)


def _check_model_kind():
    """(the --style files of an arbitrary-style export or [], the --builtin_style weights of a 26-style export
    or None); a flag that the export's kind does not take, or a missing --style or --builtin_style, is a
    UserInputError."""
    kind = files.export_kind(_MODEL.value)
    if kind != files.MULTISTYLE and _BUILTIN_STYLE.present:
        raise UserInputError(f"--model={_MODEL.value!r} takes no --builtin_style; the flag is for "
                             f"{pretrained.MULTISTYLE} exports")
    if kind != files.ARBITRARY:
        given = [f"--{holder.name}" for holder in _STYLE_FLAGS if holder.present]
        what = "is the 26-style network" if kind == files.MULTISTYLE else "learnt one style"
        if given:
            raise UserInputError(f"--model={_MODEL.value!r} {what} and takes no {', '.join(given)}; those flags "
                                 "are for arbitrary-style exports (magenta-arbitrary, train --architecture=adain)")
        if kind == files.MULTISTYLE:
            if not _BUILTIN_STYLE.present:
                raise UserInputError(f"--model={_MODEL.value!r} is the 26-style network; pick its style with "
                                     "--builtin_style=7 (or index:weight pairs, 3:0.5,12:0.5)")
            return [], pretrained.builtin_weights(_BUILTIN_STYLE.value)
        return [], None
    if not _STYLE.present:
        raise UserInputError(f"--model={_MODEL.value!r} is an arbitrary-style model; give it --style=FILE "
                             "(comma-separated files to blend)")
    if _STRENGTH.present:
        raise UserInputError(f"--model={_MODEL.value!r} is an arbitrary-style model, which takes --alpha, not "
                             "--strength")
    paths = _STYLE.value.split(",")
    if _PRESERVE_COLOR.value == "luminance" and len(paths) > 1:
        raise UserInputError(f"--preserve_color=luminance takes one --style file with an exported arbitrary-style "
                             f"model; received {len(paths)}")
    return paths, None


def _check_flags(pipeline_args):
    common.require_flags("batch", _MODEL, _INPUT, _OUTPUT_DIR)
    if _PRESERVE_COLOR.value == "histogram":
        raise UserInputError("--preserve_color=histogram recolours the style image before stylising, which an "
                             "exported stylizer cannot do; batch takes none or luminance")
    stray = [arg for arg in pipeline_args if not arg.startswith("--")]
    if stray:
        raise UserInputError(f"unexpected argument(s) {' '.join(stray)!r} for `batch`; every value is a --flag "
                             "(tf-nst's, or a Beam pipeline option)")
    if not os.path.isfile(os.path.join(_MODEL.value, "saved_model.pb")):
        raise UserInputError(f"no SavedModel in --model={_MODEL.value!r}; pass a version folder that `export` "
                             "wrote, such as exports/stylizer/1")
    style_paths, weights = _check_model_kind()
    for path in style_paths:
        files.read_image(path)  # a bad style file is an error before TensorFlow loads
    # --input is matched (one file found is enough) before TensorFlow; the workers list the files.
    batch_paths = optional.require("export.batch_paths", "the batch command")
    inputs = batch_paths.plan_inputs(_INPUT.value)
    batch_paths.check_output_dir(inputs, _OUTPUT_DIR.value)
    if "://" not in _OUTPUT_DIR.value:  # a local --output_dir is proved writable first (_failures.jsonl, outputs)
        outputs.check_writable(_OUTPUT_DIR.value, "--output_dir")
    return style_paths, weights


def _check_pipeline_options(pipeline_args):
    """Raises UserInputError for options that no Beam PipelineOptions class defines (Beam would drop them)."""
    pipeline_options = optional.require("apache_beam.options.pipeline_options", "the batch command")
    options = pipeline_options.PipelineOptions(pipeline_args)
    known = options.get_all_options()
    unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) - set(known))
    if unknown:
        raise UserInputError(f"unknown flag(s) {', '.join('--' + name for name in unknown)}: neither tf-nst's "
                             "nor a Beam pipeline option (main.py batch --help lists tf-nst's)")


def _run(pipeline_args):
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # Beam logs its setup (and optional GCP modules) at INFO/WARNING
    style_paths, builtin_weights = _check_flags(pipeline_args)
    pipeline_args = [f"--runner={_RUNNER.value}", *pipeline_args]
    _check_pipeline_options(pipeline_args)
    common.import_tensorflow()
    from export import batch  # pylint: disable=import-outside-toplevel
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    if style_paths:
        weights = _STYLE_BLEND_WEIGHTS.value
        style = stylize.Style(tuple(files.read_image(path) for path in style_paths),
                              tuple(map(float, weights)) if weights else None, _ALPHA.value, _PRESERVE_COLOR.value)
        config = batch.BatchConfig(max_size=_MAX_SIZE.value or None, style=style)
    else:
        config = batch.BatchConfig(strength=_STRENGTH.value, preserve_color=_PRESERVE_COLOR.value == "luminance",
                                   max_size=_MAX_SIZE.value or None, builtin_weights=builtin_weights)
    result = batch.run(_MODEL.value, _INPUT.value, _OUTPUT_DIR.value, config, pipeline_args)
    print(f"tf-nst: batch counters: stylized {result.stylized}, failed {result.failed}, skipped "
          f"{result.skipped} (outputs in {_OUTPUT_DIR.value})", flush=True)
    if result.failed:
        print(f"tf-nst: {result.failed} file(s) failed, listed with their reasons in {result.failures_path}",
              file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv):
    return common.run_command("batch", lambda: _run(argv[1:]), argv[:1])
