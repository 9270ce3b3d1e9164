"""The documentation against the code: docs/flags.md is what tools/flag_tables.py generates now, every
`main.py` command of README.md and docs/*.md parses (its command, flags and enum values exist), in ```bash
blocks and in inline code, and the Python blocks marked runnable run.

Commands are parsed, not run (most take minutes). A Python block is runnable when the line before its fence
is `<!-- runnable -->` (TESTING.md); it runs in a fresh interpreter in an empty folder.
"""

import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import flag_tables  # noqa: E402  pylint: disable=wrong-import-position

RUNNABLE_MARKER = "<!-- runnable -->"
RUNNABLE_TIMEOUT_S = 90
# Flags absl itself reads in every command (app.run's help flags and the flag-file flags).
ABSL_FLAGS = {"help", "helpshort", "helpfull", "helpxml", "h", "?", "flagfile", "undefok", "only_check_args",
              "run_with_pdb", "pdb", "pdb_post_mortem", "run_with_profiling", "profile_file",
              "use_cprofile_for_profiling"}
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


def documentation_pages():
    """README.md and every Markdown page under docs/ (the generated flags page included)."""
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                                  recursive=True))


def fenced_blocks(path):
    """(language, first line number, text, the line before the fence) of each fenced block in `path`."""
    blocks, lines = [], open(path, encoding="utf-8").read().splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        before = lines[index - 1].strip() if index else ""
        blocks.append((match.group(2), index + 2, "\n".join(lines[index + 1:end]), before))
        index = end + 1
    return blocks


def shell_commands(text):
    """The simple commands of a shell block: continuations joined, comments dropped, split at && ; | etc."""
    joined = re.sub(r"\\\n", " ", text)
    commands = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current = []
        for token in lexer:
            if token in _SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def main_arguments(tokens):
    """The arguments after `main.py` / `tf-nst` if `tokens` runs tf_nst's command line, else None."""
    if tokens[0] in ("python", "python3") and len(tokens) > 1 and tokens[1].endswith("main.py"):
        return tokens[2:]
    if tokens[0].endswith("main.py") or tokens[0] == "tf-nst":
        return tokens[1:]
    return None


def documented_commands():
    """(where, arguments after main.py) of every tf_nst command line in the docs' bash blocks."""
    found = []
    for path in documentation_pages():
        for language, line, text, _ in fenced_blocks(path):
            if language not in ("bash", "sh", "shell", "console"):
                continue
            for tokens in shell_commands(text):
                arguments = main_arguments(tokens)
                if arguments is not None:
                    found.append((f"{os.path.relpath(path, ROOT)}:{line}", arguments))
    return found


_INLINE_COMMAND = re.compile(r"`((?:python )?main\.py(?: [^`]*)?|tf-nst [^`]*)`")


def inline_commands():
    """(where, arguments after main.py) of every command in an inline code span outside fenced blocks (the
    command tables, the gallery's captions); `...` and the placeholder COMMAND are left out."""
    found = []
    for path in documentation_pages():
        text = re.sub(r"^\s*```.*?^\s*```", "", open(path, encoding="utf-8").read(), flags=re.DOTALL | re.MULTILINE)
        for match in _INLINE_COMMAND.finditer(text):
            tokens = [token for token in match.group(1).split() if token != "..."]
            arguments = main_arguments(tokens)
            if arguments and arguments[0] == "COMMAND":
                continue
            found.append((f"{os.path.relpath(path, ROOT)}: `{match.group(1)}`", arguments))
    return found


@pytest.fixture(scope="module")
def described():
    return flag_tables.describe_commands()


@pytest.fixture(scope="module")
def beam_options():
    """The names of Beam's pipeline options, which `batch` passes on; None without Beam."""
    try:
        from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return set(PipelineOptions([]).get_all_options())


def command_problems(arguments, described, beam_options):
    """What is wrong with `main.py <arguments>`: an unknown command or flag, a bad enum value ([] if none)."""
    command = "transfer"
    if arguments and not arguments[0].startswith("-"):
        command, arguments = arguments[0], arguments[1:]
        if command == "help":
            return []
        if command not in described:
            return [f"unknown command {command!r}"]
    by_name = {flag["name"]: flag for flag in described[command]["flags"]}
    known = ABSL_FLAGS | set(described[command]["absl"])
    problems, index = [], 0
    while index < len(arguments):
        argument = arguments[index]
        index += 1
        if not argument.startswith("-"):
            problems.append(f"{command}: stray argument {argument!r}")
            continue
        name, has_value, value = argument.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None and name.startswith("no") and not has_value:
            flag = by_name.get(name[2:]) if by_name.get(name[2:], {}).get("boolean") else None
            if flag is not None:
                continue
        if flag is None:
            if name in known:
                continue
            if command == "batch" and (beam_options is None or name in beam_options):
                continue  # a Beam pipeline option (unchecked without Beam)
            problems.append(f"{command}: no flag --{name}")
            continue
        if not has_value and not flag["boolean"]:
            if index >= len(arguments):
                problems.append(f"{command}: --{name} needs a value")
                continue
            value, index = arguments[index], index + 1
        if flag["enum_values"] and value not in flag["enum_values"]:
            problems.append(f"{command}: --{name}={value!r} is not one of {flag['enum_values']}")
    return problems


def test_the_flags_page_is_what_the_flag_definitions_give(described):
    with open(flag_tables.FLAGS_PAGE, encoding="utf-8") as page:
        committed = page.read()
    assert committed == flag_tables.render(described), "docs/flags.md is stale: run python tools/flag_tables.py"


def test_the_flags_page_lists_what_help_lists(described):
    """The tables' flags are those `main.py COMMAND --help` prints (the same reading, independently checked)."""
    result = subprocess.run([sys.executable, "main.py", "transfer", "--help"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+)", result.stdout, flags=re.MULTILINE))
    assert listed == {flag["name"] for flag in described["transfer"]["flags"]}


def test_every_documented_command_parses(described, beam_options):
    commands = documented_commands()
    assert len(commands) >= 30, f"found only {len(commands)} documented commands: is the block parser broken?"
    problems = [f"{where}: {problem}" for where, arguments in commands
                for problem in command_problems(arguments, described, beam_options)]
    assert not problems, "\n".join(problems)


def test_every_inline_command_parses(described, beam_options):
    commands = inline_commands()
    assert len(commands) >= 20, f"found only {len(commands)} inline commands"
    problems = [f"{where}: {problem}" for where, arguments in commands
                for problem in command_problems(arguments, described, beam_options)]
    assert not problems, "\n".join(problems)


def test_the_parser_finds_stale_flags_and_values(described, beam_options):
    """The check itself: a renamed flag, a bad enum value, an unknown command and a missing value are found;
    --noflag, absl's flags, Beam's options for batch and continuations pass."""
    def problems(line):
        (tokens,) = shell_commands(line)
        return command_problems(main_arguments(tokens), described, beam_options)

    assert problems("python main.py --image_sise=256") == ["transfer: no flag --image_sise"]
    assert problems("main.py stylize --model=x --preserve_color=lum") != []
    assert problems("tf-nst transform --content=a.jpg") == ["unknown command 'transform'"]
    assert problems("python main.py export --model") == ["export: --model needs a value"]
    assert problems("python main.py --nocontent_detail --flagfile=f.cfg \\\n --precision=float32  # a comment") == []
    assert problems("python main.py batch --model=m --direct_num_workers=2") == []
    assert problems("python main.py train --noimage_size") == ["train: no flag --noimage_size"]


def runnable_blocks():
    return [pytest.param(text, id=f"{os.path.relpath(path, ROOT)}:{line}")
            for path in documentation_pages() for language, line, text, before in fenced_blocks(path)
            if language == "python" and before == RUNNABLE_MARKER]


@pytest.mark.parametrize("code", runnable_blocks())
def test_runnable_python_blocks_run(code, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=RUNNABLE_TIMEOUT_S, check=False,
                            env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_some_python_blocks_are_marked_runnable():
    assert len(runnable_blocks()) >= 2
