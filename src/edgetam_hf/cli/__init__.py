"""The `edgetam-hf` command line (also `python -m edgetam_hf`): segment, track,
segment-everything, convert, demo and finetune. Every command reports bad input in one line on stderr and
exits with status 2; see docs/getting_started.md."""

import argparse
import sys

from .convert import add_convert_parser
from .demo import add_demo_parser
from .finetune import add_finetune_parser
from .segment import add_segment_parsers
from .track import add_track_parser

USAGE_ERROR = 2


class _OneLineErrors(argparse.ArgumentParser):
    """argparse prints the whole usage on a bad argument; one line says what was wrong."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="edgetam-hf", description="EdgeTAM segmentation and tracking from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_segment_parsers(commands)
    add_track_parser(commands)
    add_demo_parser(commands)
    add_convert_parser(commands)
    add_finetune_parser(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        print(f"edgetam-hf {args.command}: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, ValueError) else f"{type(error).__name__}: {text}"
