"""`models`: lists the built-in pretrained networks (name, what it does, paper, source package, licence,
size) and where their licence and attribution are. Loads no model and imports no TensorFlow."""

import os

from tf_nst import pretrained
from tf_nst.cli import common

LICENSE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "licenses")


def _run():
    print(pretrained.describe_all())
    print(f"\nLicence texts and attribution: {LICENSE_DIR}/ (NOTICE-pretrained.md, APACHE-2.0.txt)")
    return 0


def main(argv):
    return common.run_command("models", _run, argv)
