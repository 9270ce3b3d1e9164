"""Where the batch job reads and writes, through Beam's filesystems (local paths; gs:// with apache-beam[gcp];
any registered scheme): the input pattern, each output's name, and atomic writes. No TensorFlow here, so
`main.py batch` checks --input before TensorFlow loads."""

import dataclasses
import os
import posixpath
import re
import uuid

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tf_nst import files
from tf_nst import outputs
from tf_nst.errors import UserInputError

_GLOB = re.compile(r"[*?[]")


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the job reads.

    Attributes:
      pattern: what fileio.MatchFiles matches: a file, `<folder>/**`, or the user's glob.
      root: outputs keep their path below it (files.output_name), as `stylize` keeps them below its folder.
      single_file: a file named on its own is read whatever its extension; the matches of a folder or a glob
        only when they end in files.IMAGE_EXTENSIONS.
    """

    pattern: str
    root: str
    single_file: bool = False


def is_local(path):
    """Whether `path` is on the local disk (no `scheme://`)."""
    return FileSystems.get_scheme(path) is None


def absolute(path):
    """A local path made absolute (workers may run elsewhere than the launcher's folder); a URL unchanged."""
    return os.path.abspath(path) if is_local(path) else path


def plan_inputs(input_path):
    """The Inputs for --input: an image file, a folder (searched recursively) or a glob, local or remote.

    Looks for one match only (two for a file), so a remote folder of millions of files is not listed on
    the launcher.

    Raises:
      UserInputError: nothing matches, or a scheme with no Beam filesystem installed.
    """
    input_path = absolute(input_path)
    try:
        if _GLOB.search(input_path):
            prefix = input_path[:_GLOB.search(input_path).start()]
            inputs = Inputs(input_path, prefix[:prefix.rfind("/") + 1])
        else:
            inputs = Inputs(_as_folder(input_path) + "**", input_path)
            # Elsewhere a folder is one with anything below it: on object stores (gs://) it is a name prefix.
            if not (os.path.isdir(input_path) if is_local(input_path) else _matches(inputs.pattern)):
                inputs = Inputs(input_path, _parent(input_path), single_file=True)
        found = _matches(inputs.pattern)
    except (ValueError, BeamIOError) as e:
        raise UserInputError(f"cannot read input {input_path!r}: {str(e).splitlines()[0]}") from None
    if not found:
        raise UserInputError(f"input not found: {input_path!r}; give an image file, a folder of images or a "
                             "glob such as photos/*.jpg (local, or a URL such as gs://bucket/photos/)")
    return inputs


def _matches(pattern):
    """Whether `pattern` matches a file; stops at the first, so a folder of millions is not listed."""
    return bool(FileSystems.match([pattern], limits=[1])[0].metadata_list)


def check_output_dir(inputs, output_dir):
    """Raises UserInputError when the outputs would go into the input folder itself, over their inputs."""
    if _as_folder(absolute(output_dir)) == _as_folder(inputs.root):
        raise UserInputError(f"--output_dir {output_dir!r} is the input folder; outputs would replace their "
                             "inputs, choose another --output_dir")


def is_input(path, inputs, output_dir):
    """Whether a match of inputs.pattern is an image to stylise (not one under output_dir, of a rerun)."""
    if inputs.single_file:
        return True
    return not path.startswith(_as_folder(output_dir)) and path.lower().endswith(files.IMAGE_EXTENSIONS)


def output_path(path, inputs, output_dir):
    """Where the output of input `path` goes: its name as `stylize` gives it, under output_dir."""
    return FileSystems.join(output_dir, files.output_name(path, inputs.root))


def exists(path):
    return FileSystems.exists(path)


def write_file(path, data, replace=True):
    """Writes bytes under a temporary name, then renames it to `path`, so no reader sees half a file.

    Local paths go through outputs.write_file: atomic, the file modes the umask gives; without `replace`, a
    file that appeared at `path` meanwhile is left as it is (outputs.OutputAppearedError, the bytes kept
    beside it). Elsewhere, without `replace`, the best there is: a check just before the rename.
    """
    if is_local(path):
        outputs.write_file(path, data, replace=replace)
        return
    # On object stores (gs://, s3://) Beam's rename is the store's copy then delete: the output appears whole
    # or not at all, but the rename is two requests, and a temporary object can outlive a killed worker.
    temp_path = FileSystems.join(_parent(path), f".tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}")
    try:
        with FileSystems.create(temp_path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        if not replace and FileSystems.exists(path):
            raise outputs.OutputAppearedError(path, _keep(temp_path, path))
        FileSystems.rename([temp_path], [path])
    except BaseException:
        if FileSystems.exists(temp_path):
            FileSystems.delete([temp_path])
        raise


def _keep(temp_path, path):
    """Renames the written temporary to a new name beside `path` (<stem>-kept-<hex><ext>); returns it."""
    stem, extension = posixpath.splitext(path)
    kept = f"{stem}-kept-{uuid.uuid4().hex[:6]}{extension}"
    FileSystems.rename([temp_path], [kept])
    return kept


def _parent(path):
    """The folder of a file path or URL, with its trailing "/" ("" for a bare file name)."""
    return path[:path.rfind("/") + 1]


def _as_folder(path):
    return path if path.endswith("/") else path + "/"
