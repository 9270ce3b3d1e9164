"""tf-nst command line: `python main.py [COMMAND] [--flag=value ...]`.

  python main.py                       # transfer: stylise the bundled samples into stylized.png
  python main.py transfer --content=photo.jpg --style=painting.jpg --output=out.png --image_size=512
  python main.py train --dataset_dir=photos/ --style=painting.jpg --train_dir=runs/painting
  python main.py stylize --model=runs/painting --input=photos/ --output_dir=styled/ --max_size=1024
  python main.py export --model=runs/painting --export_dir=exports
  python main.py serve-request --input=photos/ --output_dir=styled/ --server=localhost:8501
  python main.py help                  # the commands; `main.py COMMAND --help`: the flags a command reads

This file only picks the command; each lives in tf_nst/cli/<command>.py with its flags. User errors (bad
flags, unreadable images, a weights file for the wrong backbone) print one line, `tf-nst: error: ...`, and
exit with status 2 without writing any file.
"""

import importlib
import os
import sys

from absl import app
from absl import flags

from tf_nst import cli
from tf_nst.cli import common


def _split_command(argv):
    """(command or None, the arguments after it): the command is argv[1] unless that is a flag."""
    if len(argv) > 1 and not argv[1].startswith("-"):
        return argv[1], argv[2:]
    return None, argv[1:]


def main(argv=None):
    """Runs the command named by argv[1] (default `transfer`); returns only for help and unknown commands."""
    argv = list(sys.argv if argv is None else argv)
    command, rest = _split_command(argv)
    program = os.path.basename(argv[0]) if argv and argv[0].endswith(("main.py", "tf-nst")) else "main.py"
    if command == "help" or (command is None and any(arg in cli.HELP_FLAGS for arg in rest)):
        print(cli.command_help(rest[0], program) if command and rest and rest[0] in cli.COMMANDS
              else cli.usage(program))
        return 0
    if command is not None and command not in cli.COMMANDS:
        common.error(f"unknown command {command!r}; use one of {', '.join(cli.COMMANDS)}, or help")
        return 2
    explicit = command is not None
    command = command or "transfer"
    if any(arg in cli.HELP_FLAGS for arg in rest):
        print(cli.command_help(command, program))
        return 0
    module = importlib.import_module(cli.COMMANDS[command].module)
    if "--helpfull" in rest:  # every flag: all commands' without a command, else this command's and absl's
        for other in cli.COMMANDS.values() if not explicit else ():
            importlib.import_module(other.module)
        print(f"{cli.usage(program)}\n\n{flags.FLAGS.get_help()}")
        return 0
    # A command that passes unknown flags on (batch: Beam's pipeline options) brings its own parser.
    app.run(module.main, argv=[f"{argv[0]} {command}", *rest],
            flags_parser=getattr(module, "parse_flags", common.parse_flags))
    return 0


def run():
    """Console-script entry point (`tf-nst`)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
