"""Progress bars that keep logs small: `progress_bar` is tqdm, refreshing at most every
OFF_TERMINAL_INTERVAL_S seconds when stderr is not a terminal (a log file, a pipe, nohup, a scheduler):
there every refresh stays in the log, and tqdm's default (ten a second) wrote tens of kilobytes of
``\\r`` updates a minute. On a terminal, and in a notebook (a widget), tqdm's defaults are kept.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm
from tqdm.notebook import tqdm as notebook_tqdm

OFF_TERMINAL_INTERVAL_S = 30.0


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """tqdm.auto.tqdm(iterable, **kwargs) on stderr; off a terminal, mininterval and maxinterval default
    to OFF_TERMINAL_INTERVAL_S (maxinterval too, or tqdm's monitor would refresh every 10 s). Set the
    postfix with ``refresh=False``, so that it shows at the next refresh instead of forcing one."""
    if not issubclass(tqdm, notebook_tqdm) and not _is_terminal(kwargs.get("file") or sys.stderr):
        kwargs = {"mininterval": OFF_TERMINAL_INTERVAL_S, "maxinterval": OFF_TERMINAL_INTERVAL_S, **kwargs}
    return tqdm(iterable, **kwargs)


__all__ = ["OFF_TERMINAL_INTERVAL_S", "progress_bar"]
