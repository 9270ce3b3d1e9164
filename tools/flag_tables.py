"""Writes docs/flags.md, the per-flag reference of every command, from the commands' absl flag definitions.

  python tools/flag_tables.py            # rewrite docs/flags.md
  python tools/flag_tables.py --check    # exit 1 if docs/flags.md differs from freshly generated tables

Each command's flags are read in a fresh interpreter that imports only that command's module, as
`main.py COMMAND --help` does: in one process a shared flag keeps the default of whichever command defined it
first (flag_groups._once; `--output_dir` has a default for `stylize` and none for `serve-request`).
"""

import concurrent.futures
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_PAGE = os.path.join(ROOT, "docs", "flags.md")

# Run in the child: the flags one command module reads, and absl's own, as JSON on stdout.
_DESCRIBE = r"""
import importlib, json, sys
from absl import flags
module = importlib.import_module(sys.argv[1])
def describe(flag):
    parser = flag.parser
    return {"name": flag.name, "boolean": flag.boolean, "default": flag.default,
            "serialized_default": None if flag.default is None else flag._serialize(flag.default).split("=", 1)[-1],
            "help": flag.help, "enum_values": list(getattr(parser, "enum_values", None) or []) or None}
own = flags.FLAGS.get_key_flags_for_module(module.__name__)
own_names = {flag.name for flag in own}
library = {name for name, holder in flags.FLAGS.flags_by_module_dict().items() if name.startswith("tf_nst")}
tf_nst_flags = {flag.name for name in library for flag in flags.FLAGS.flags_by_module_dict()[name]}
absl_names = sorted(name for name in flags.FLAGS if name not in tf_nst_flags)
print(json.dumps({"flags": [describe(flag) for flag in own], "absl": absl_names}, default=str))
"""


def describe_command(module):
    """{"flags": [one dict per flag the command reads, in --help's order], "absl": [absl's own flag names,
    short names included]} for the command module `module`, read in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", _DESCRIBE, module], cwd=ROOT, capture_output=True, text=True,
                            check=False, env={**os.environ, "PYTHONPATH": ROOT})
    if result.returncode != 0:
        raise RuntimeError(f"reading the flags of {module} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def describe_commands():
    """{command: describe_command(its module)} for every command in tf_nst.cli.COMMANDS."""
    sys.path.insert(0, ROOT)
    from tf_nst import cli  # pylint: disable=import-outside-toplevel

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        described = pool.map(describe_command, [command.module for command in cli.COMMANDS.values()])
        return dict(zip(cli.COMMANDS, described))


def _cell(text):
    """Text safe inside a Markdown table cell: one line, no column breaks, no HTML."""
    text = " ".join(str(text).split())
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*")):
        text = text.replace(char, escaped)
    return text


def _default(flag):
    if flag["default"] is None:
        return "(none)"
    if flag["boolean"]:
        return "`true`" if flag["default"] else "`false`"
    value = flag["serialized_default"]
    value = value.replace(ROOT + os.sep, "")  # the bundled samples, as a path in the repository
    return f"`{value}`" if value != "" else '`""`'


def _help(flag):
    text = flag["help"]
    if flag["enum_values"]:  # absl starts an enum's help with "<a|b|c>: "; the values get their own column
        prefix = f"<{'|'.join(flag['enum_values'])}>: "
        text = text[len(prefix):] if text.startswith(prefix) else text
    return _cell(text)


def render(described):
    """docs/flags.md's text for `described` (describe_commands())."""
    lines = ["# Flags", "",
             "Every flag of every command, generated from the commands' absl definitions by "
             "`python tools/flag_tables.py` (`tests/test_docs.py` fails when this page differs from them). "
             "`python main.py COMMAND --help` prints the same list. A boolean flag `--name` is turned off with "
             "`--noname`; every command also takes absl's own flags, `--flagfile=FILE` among them. A shared "
             "flag's help ends with the commands that read it.", ""]
    for command, description in described.items():
        lines += [f"## {command}", ""]
        if not description["flags"]:
            lines += ["No flags of its own.", ""]
            continue
        lines += ["| flag | default | values | help |", "| --- | --- | --- | --- |"]
        for flag in description["flags"]:
            name = f"`--[no]{flag['name']}`" if flag["boolean"] else f"`--{flag['name']}`"
            values = ", ".join(f"`{value}`" for value in flag["enum_values"] or ())
            lines.append(f"| {name} | {_default(flag)} | {values} | {_help(flag)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    text = render(describe_commands())
    if "--check" in argv:
        with open(FLAGS_PAGE, encoding="utf-8") as page:
            if page.read() != text:
                print(f"{FLAGS_PAGE} is out of date: run python tools/flag_tables.py", file=sys.stderr)
                return 1
        return 0
    with open(FLAGS_PAGE, "w", encoding="utf-8") as page:
        page.write(text)
    print(f"wrote {FLAGS_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
