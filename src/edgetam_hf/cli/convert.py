"""`edgetam-hf convert`: Meta's edgetam.pt -> a save_pretrained folder (see docs/checkpoints.md)."""

import sys

from .models import quiet_transformers


def add_arguments(convert) -> None:
    convert.description = (
        "Convert Meta's original EdgeTAM checkpoint into a save_pretrained folder (config.json, "
        "model.safetensors, processor config, model card). Nothing is written when a key is unmapped, "
        "missing or of the wrong shape, or when the verification fails."
    )
    convert.add_argument("checkpoint", help="Meta's original checkpoint ({'model': state_dict}), e.g. edgetam.pt")
    convert.add_argument("output_dir", help="the folder to write (must be empty or absent unless --overwrite)")
    convert.add_argument(
        "--model",
        choices=("image", "video", "both"),
        default="both",
        help="image: the image model only; video or both (default; the same folder): every weight, one "
        "folder that loads into EdgeTamVideoModel and EdgeTamModel, as in transformers",
    )
    convert.add_argument(
        "--verify",
        action="store_true",
        help="run the folder's models on a built-in image and box against the mapped weights (and against "
        "Meta's sam2 package when it is importable)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace output_dir if it exists")
    convert.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the verified folder to this Hub model repo")
    convert.add_argument("--private", action="store_true", help="create the Hub repo as private")
    convert.add_argument("--revision", help="Hub branch to push to (created if missing)")
    convert.set_defaults(run=run_convert)


def run_convert(args) -> int:
    from ..conversion import HubPushError, VerificationError, convert_checkpoint, push_to_hub

    if (args.private or args.revision) and not args.push_to_hub:
        raise ValueError("--private and --revision apply to --push-to-hub")
    try:
        with quiet_transformers():  # this command prints its own summary
            result = convert_checkpoint(
                args.checkpoint,
                args.output_dir,
                model=args.model,
                verify=args.verify or bool(args.push_to_hub),  # only a verified folder is pushed
                overwrite=args.overwrite,
                repo_id=args.push_to_hub,
            )
    except VerificationError as error:
        _print_lines("verification", error.report.lines())
        print(f"edgetam-hf convert: verification failed; nothing was written to {args.output_dir}", file=sys.stderr)
        return 1
    print(
        f"wrote {result.output_dir} for {' and '.join(result.model_classes)}: {result.num_original_keys} original "
        f"keys -> {result.num_saved_tensors} tensors, {result.num_parameters:,} parameters"
    )
    if result.verification is not None:
        _print_lines("verification", result.verification.lines())
    if args.push_to_hub:
        try:
            url = push_to_hub(result.output_dir, args.push_to_hub, private=args.private, revision=args.revision)
        except HubPushError as error:
            print(f"edgetam-hf convert: {error}; the converted folder is at {result.output_dir}", file=sys.stderr)
            return 3
        print(f"pushed {result.output_dir} to {url}")
    return 0


def _print_lines(title: str, lines: list[str]) -> None:
    print(f"{title}:")
    for line in lines:
        print(f"  {line}")
