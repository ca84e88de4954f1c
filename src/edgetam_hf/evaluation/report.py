"""An `Evaluation` as a CSV file and as a printed table."""

import csv
import io
import os
from pathlib import Path

from .davis import Evaluation

CSV_COLUMNS = ("level", "video", "object", "J&F", "J", "F")


def evaluation_rows(evaluation: Evaluation) -> list[tuple]:
    """(level, video, object, J&F, J, F): the overall means, each video's, then each object's."""
    rows = [("overall", "", "", *evaluation.mean())]
    rows += [("video", video, "", *evaluation.mean(video)) for video in evaluation.videos]
    rows += [("object", score.video, score.obj_id, score.jf, score.j, score.f) for score in evaluation.objects]
    return rows


def write_csv(evaluation: Evaluation, path: str | os.PathLike) -> None:
    """Full-precision scores, written to a temporary sibling and renamed into place."""
    path = Path(path)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(evaluation_rows(evaluation))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text.getvalue())
    partial.replace(path)


def format_table(evaluation: Evaluation) -> str:
    """One line per object and per video, then the overall line; one decimal, as DAVIS tables."""
    name_width = max(len("overall"), *(len(video) for video in evaluation.videos))
    lines = [f"{'video':<{name_width}}  {'object':>6}  {'J&F':>5}  {'J':>5}  {'F':>5}"]
    for video in evaluation.videos:
        for score in (score for score in evaluation.objects if score.video == video):
            lines.append(_line(video, str(score.obj_id), (score.jf, score.j, score.f), name_width))
        lines.append(_line(video, "mean", evaluation.mean(video), name_width))
    lines.append(_line("overall", "", evaluation.mean(), name_width))
    return "\n".join(lines)


def _line(name: str, obj: str, scores: tuple[float, float, float], name_width: int) -> str:
    jf, j, f = scores
    return f"{name:<{name_width}}  {obj:>6}  {jf:5.1f}  {j:5.1f}  {f:5.1f}"
