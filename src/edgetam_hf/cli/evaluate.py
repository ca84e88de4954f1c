"""`edgetam-hf evaluate`: J, F and J&F of predicted masks against ground truth, both in the DAVIS
layout, with the DAVIS 2017 semi-supervised conventions (edgetam_hf/evaluation/davis.py)."""

import os
from pathlib import Path


def add_arguments(evaluate) -> None:
    evaluate.description = (
        "Score PRED_ROOT/<video>/<frame>.png against GT_ROOT/<video>/<frame>.png (indexed PNGs, "
        "pixel value = object id) as the DAVIS 2017 semi-supervised benchmark does: first and last frames not "
        "scored, means over objects, in percent. Prints a table and writes a CSV."
    )
    evaluate.add_argument("--gt", type=Path, required=True, metavar="GT_ROOT", help="ground-truth masks (DAVIS: Annotations/480p)")
    evaluate.add_argument("--pred", type=Path, required=True, metavar="PRED_ROOT", help="predicted masks, e.g. annotate's OUT_ROOT")
    evaluate.add_argument("--videos", metavar="NAMES|FILE", help="names separated by commas, or a file of names (default: every folder of GT_ROOT)")
    evaluate.add_argument("--csv", type=Path, help="where the scores go (default: PRED_ROOT/results.csv)")
    evaluate.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="videos scored at once, in separate processes (default: one per CPU)")
    evaluate.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from ..evaluation import evaluate_folders, format_table, write_csv
    from .annotate_jobs import parse_video_names

    if args.workers < 1:
        raise ValueError(f"--workers: expected 1 or more, got {args.workers}")
    videos = parse_video_names(args.videos) if args.videos is not None else None
    evaluation = evaluate_folders(args.gt, args.pred, videos, workers=args.workers)
    csv_path = args.csv or args.pred / "results.csv"
    write_csv(evaluation, csv_path)
    jf, j, f = evaluation.mean()
    print(format_table(evaluation))
    print(f"J&F {jf:.1f}  J {j:.1f}  F {f:.1f} over {len(evaluation.objects)} object(s) of {len(evaluation.videos)} video(s); scores in {csv_path}")
    return 0
