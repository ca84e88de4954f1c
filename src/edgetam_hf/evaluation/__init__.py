"""Video object segmentation scores: J (region IoU), F (boundary F-measure) and J&F in the DAVIS
2017 semi-supervised conventions, and a tiny DAVIS-layout set to try them on (docs/annotate.md)."""

from .davis import Evaluation, ObjectScore, evaluate_folders, evaluate_video, read_label_png
from .metrics import boundary_f_measure, region_similarity
from .report import format_table, write_csv
from .sample_set import render_sample_set

__all__ = [
    "Evaluation",
    "ObjectScore",
    "boundary_f_measure",
    "evaluate_folders",
    "evaluate_video",
    "format_table",
    "read_label_png",
    "region_similarity",
    "render_sample_set",
    "write_csv",
]
