"""Progress of long commands on any stream: tqdm's bar on a terminal; in a log, a pipe or CI (where
a bar would be one endless line of carriage returns, and `disable=None` shows nothing at all) a
plain line every few seconds, with tqdm's counts, rate and time left."""

import sys

from tqdm.auto import tqdm

LINE_INTERVAL_S = 5.0


class _OneLinePerUpdate:
    """A file for tqdm that turns each carriage-return refresh into a line of its own."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable=None, *, total: int | None = None, desc: str, unit: str, stream=None) -> tqdm:
    """tqdm over `iterable` (or updated by hand), on stderr unless `stream` is given."""
    stream = sys.stderr if stream is None else stream
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream)
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, file=_OneLinePerUpdate(stream), mininterval=LINE_INTERVAL_S, ascii=True
    )
