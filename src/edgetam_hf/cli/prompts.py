"""Prompts typed on the command line: `--frame`, `--object`, `--point`, `--box`, in order.

argparse keeps each option's values apart; the order between options says which object and
frame a click or box belongs to, so every prompt option appends to one shared list
(`args.prompt_sequence`) and `group_prompts` reads it left to right:

    --frame 0 --object 1 --point 210,350 --object 2 --box 50,40,300,260 --point 120,90,0

`--frame N` sets the frame of the prompts after it (default 0), `--object ID` the object
(default 1). Each object takes clicks and at most one box per frame, as SAM 2 is trained.
"""

import argparse
from dataclasses import dataclass, field

from ..conventions import LABEL_NEGATIVE as NEGATIVE
from ..conventions import LABEL_POSITIVE as POSITIVE

MAX_OBJECT_ID = 255  # object ids are palette indices of the DAVIS-style PNGs; 0 is the background


@dataclass
class ObjectPrompt:
    """The clicks and box of one object on one frame, in pixels of the original image."""

    obj_id: int
    frame_idx: int
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    def as_json(self) -> dict:
        described = {"object": self.obj_id, "frame": self.frame_idx}
        if self.points:
            described["points"] = [[x, y, label] for (x, y), label in zip(self.points, self.labels)]
        if self.box is not None:
            described["box"] = list(self.box)
        return described


class _InOrder(argparse.Action):
    """Appends (option, parsed value) to `namespace.prompt_sequence`."""

    def __call__(self, parser, namespace, values, option_string=None):
        sequence = getattr(namespace, "prompt_sequence", None) or []
        namespace.prompt_sequence = sequence + [(option_string, values)]


def add_prompt_arguments(parser: argparse.ArgumentParser, with_frames: bool) -> None:
    group = parser.add_argument_group("prompts (in order: each applies to the --object and --frame before it)")
    group.add_argument(
        "--point", action=_InOrder, type=_point, metavar="X,Y[,LABEL]",
        help="a click in image pixels; LABEL 1 (default) keeps the spot, 0 excludes it",
    )
    group.add_argument(
        "--box", action=_InOrder, type=_box, metavar="X0,Y0,X1,Y1", help="a box in image pixels (one per object)"
    )
    group.add_argument(
        "--object", action=_InOrder, type=_object_id, metavar="ID",
        help=f"the object the next prompts belong to, 1 to {MAX_OBJECT_ID} (default 1); "
        "its mask's value in the written PNGs",
    )
    if with_frames:
        group.add_argument(
            "--frame", action=_InOrder, type=_frame_index, metavar="N",
            help="the frame (0-based) the next prompts are on (default 0)",
        )
    parser.set_defaults(prompt_sequence=[])


def group_prompts(sequence: list[tuple[str, object]]) -> list[ObjectPrompt]:
    """The options in typed order -> one ObjectPrompt per (object, frame), in order of first mention."""
    obj_id, frame_idx = 1, 0
    prompts: dict[tuple[int, int], ObjectPrompt] = {}
    for option, value in sequence:
        if option == "--object":
            obj_id = value
        elif option == "--frame":
            frame_idx = value
        else:
            prompt = prompts.setdefault((obj_id, frame_idx), ObjectPrompt(obj_id, frame_idx))
            if option == "--point":
                prompt.points.append(value[:2])
                prompt.labels.append(value[2])
            elif prompt.box is not None:
                raise ValueError(
                    f"--box: object {obj_id} already has a box on frame {frame_idx}; give each object its own "
                    "--object ID before its box"
                )
            else:
                prompt.box = value
    if not prompts:
        raise ValueError("give at least one prompt: --point X,Y or --box X0,Y0,X1,Y1")
    return list(prompts.values())


def check_inside(prompts: list[ObjectPrompt], width: int, height: int, what: str = "image") -> None:
    """Every click and box corner must lie in the image: outside it the model still answers, wrongly."""
    for prompt in prompts:
        for x, y in prompt.points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(
                    f"--point {x:g},{y:g}: outside the {what} of {width}x{height} pixels (x in 0..{width}, y in 0..{height})"
                )
        if prompt.box is not None and not _box_inside(prompt.box, width, height):
            raise ValueError(
                f"--box {','.join(f'{v:g}' for v in prompt.box)}: outside the {what} of {width}x{height} pixels"
            )


def _box_inside(box, width: int, height: int) -> bool:
    x0, y0, x1, y1 = box
    return 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height


def _numbers(text: str, layout: str, counts: tuple[int, ...]) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = None
    if values is None or len(values) not in counts:
        raise argparse.ArgumentTypeError(f"expected {layout} (numbers separated by commas), got {text!r}")
    return values


def _point(text: str) -> tuple[float, float, int]:
    values = _numbers(text, "X,Y or X,Y,LABEL", (2, 3))
    label = POSITIVE if len(values) == 2 else values[2]
    if label not in (POSITIVE, NEGATIVE):
        raise argparse.ArgumentTypeError(f"LABEL must be 1 (positive) or 0 (negative), got {text!r}")
    return values[0], values[1], int(label)


def _box(text: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = _numbers(text, "X0,Y0,X1,Y1", (4,))
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"expected X0 < X1 and Y0 < Y1 (top-left, then bottom-right corner), got {text!r}")
    return x0, y0, x1, y1


def _object_id(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_OBJECT_ID:
        raise argparse.ArgumentTypeError(
            f"expected an object id from 1 to {MAX_OBJECT_ID} (0 is the background of the masks), got {text!r}"
        )
    return int(text)


def _frame_index(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a frame number, 0 or more, got {text!r}")
    return int(text)
