"""The `edgetam-hf` command line (also `python -m edgetam_hf`). Every command reports bad input in
one line on stderr and exits with status 2; see docs/getting_started.md.

A subcommand is one module of this package, listed in `COMMANDS`. The module defines
`add_arguments(parser)`, which adds its arguments and description and sets `run` (a function of
the parsed arguments returning the exit status). Only the chosen command's module is imported, and
only after the command line is parsed do the commands import torch and transformers, so that
`edgetam-hf --help` and usage errors answer at once.
"""

import argparse
import importlib
import sys

USAGE_ERROR = 2

# subcommand -> (its module in edgetam_hf.cli, the line `edgetam-hf --help` shows)
COMMANDS = {
    "segment": ("segment", "segment objects of an image from clicks and boxes"),
    "track": ("track", "track objects through a video from clicks and boxes"),
    "segment-everything": ("segment_everything", "find every object of an image (automatic mask generation)"),
    "demo": ("demo", "segment and track on the bundled sample media"),
    "convert": ("convert", "convert Meta's edgetam.pt into a save_pretrained folder"),
    "annotate": ("annotate", "track many videos from first masks or prompts, resumably, over accelerate's processes"),
    "export": ("export", "export the model to ONNX for onnxruntime"),
    "finetune": ("finetune", "fine-tune the image model on images with instance masks"),
    "evaluate": ("evaluate", "score predicted masks against ground truth (J, F, J&F; DAVIS 2017 conventions)"),
    "studio": ("studio", "a local web app: click objects, track them through a video, correct, download masks"),
}


class _OneLineErrors(argparse.ArgumentParser):
    """argparse prints the whole usage on a bad argument; one line says what was wrong."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the subcommand named first in `argv` (all of them when None)."""
    parser = _OneLineErrors(prog="edgetam-hf", description="EdgeTAM segmentation and tracking from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None) if argv is not None else None
    for name, (module_name, help_line) in COMMANDS.items():
        command = commands.add_parser(name, help=help_line, description=help_line)
        if argv is None or name == chosen:
            importlib.import_module(f"{__name__}.{module_name}").add_arguments(command)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        print(f"edgetam-hf {args.command}: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    except ModuleNotFoundError as error:
        if error.name not in ("torch", "transformers"):
            raise
        print(
            f"edgetam-hf {args.command}: needs {error.name}, which is not installed (pip install edgetam-hf installs it); "
            "without it, segment and track run with an ONNX export folder as --model (docs/export.md)",
            file=sys.stderr,
        )
        return USAGE_ERROR


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, ValueError) else f"{type(error).__name__}: {text}"
