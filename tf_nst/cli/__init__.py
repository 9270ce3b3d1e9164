"""The command line: one module per command, each defining only the flags it reads (shared ones come from
flag_groups). main.py picks the command and imports only its module.

A new command is a module here with `main(argv)` (flags and paths checked first, then
common.import_tensorflow(), then one library call) and a line in COMMANDS.
"""

import collections

Command = collections.namedtuple("Command", ["module", "summary", "example"])

COMMANDS = {
    "transfer": Command(
        "tf_nst.cli.transfer", "stylise one image by optimising its pixels (Gatys et al.); the default command",
        "main.py transfer --content=photo.jpg --style=painting.jpg --output=out.png --image_size=512"),
    "train": Command(
        "tf_nst.cli.train", "train a feed-forward stylizer for one style on a folder of photos",
        "main.py train --dataset_dir=photos/ --style=painting.jpg --train_dir=runs/painting"),
    "stylize": Command(
        "tf_nst.cli.stylize", "stylise an image file or a folder in one pass: any style with the pretrained "
        "network, 26 built-in styles, or a network you trained",
        "main.py stylize --input=photo.jpg --style=painting.jpg"),
    "export": Command(
        "tf_nst.cli.export", "export a trained stylizer as a versioned SavedModel for TF Serving",
        "main.py export --model=runs/painting --export_dir=exports"),
    "serve-request": Command(
        "tf_nst.cli.serve_request", "stylise image files with a running TF Serving (REST or gRPC)",
        "main.py serve-request --input=photos/ --output_dir=styled/ --server=localhost:8501"),
    "video": Command(
        "tf_nst.cli.video", "stylise a clip without flicker: one pass per frame made consistent by optical flow, "
        "or per-image optimisation with a temporal loss",
        "main.py video --input=clip.mp4 --style=painting.jpg --output=styled.mp4"),
    "models": Command(
        "tf_nst.cli.models", "list the built-in pretrained networks, their papers, sources and licences",
        "main.py models"),
    "batch": Command(
        "tf_nst.cli.batch", "stylise a folder with an exported SavedModel as an Apache Beam job (any runner)",
        "main.py batch --model=exports/stylizer/1 --input=photos/ --output_dir=styled/"),
}

HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")


def usage(program="main.py"):
    """The list of commands, one line and an example each."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {program} [COMMAND] [--flag=value ...]", "", "commands:"]
    for name, command in COMMANDS.items():
        lines += [f"  {name:<{width}}  {command.summary}", f"  {'':<{width}}    e.g. {command.example}"]
    lines += ["", f"`{program} COMMAND --help` lists the flags a command reads; `--helpfull` lists every flag.",
              "Without a command, main.py runs `transfer`. Flags can also come from --flagfile=FILE."]
    return "\n".join(lines)


def command_help(name, program="main.py"):
    """The help of one command: its line, its example and the flags it reads (imports its module)."""
    import importlib  # pylint: disable=import-outside-toplevel

    from absl import flags  # pylint: disable=import-outside-toplevel

    command = COMMANDS[name]
    module = importlib.import_module(command.module)
    return "\n".join([f"usage: {program} {name} [--flag=value ...]", "", f"{name}: {command.summary}",
                      f"  e.g. {command.example}", "", (module.__doc__ or "").strip(), "",
                      "flags ([commands] after a flag's help: the commands that share it):",
                      flags.FLAGS.module_help(module.__name__)])
