"""progress_bar: tqdm's refresh off a terminal is rare, so a log holds a few lines, not thousands."""

import io

from diffserial import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_the_bar_refreshes_rarely():
    log = io.StringIO()
    bar = progress.progress_bar(range(20_000), file=log, desc="train")
    for step in bar:
        if step % 100 == 0:
            bar.set_postfix(loss=f"{1 / (step + 1):.4g}", refresh=False)
    bar.close()
    assert bar.mininterval == bar.maxinterval == progress.OFF_TERMINAL_INTERVAL_S
    updates = log.getvalue().split("\r")
    assert len(updates) <= 4, updates  # the opening line and the closing one (the loop takes well under 30 s)
    assert "20000/20000" in updates[-1] and "loss=5.025e-05" in updates[-1]  # 1 / 19901


def test_on_a_terminal_tqdm_defaults_are_kept():
    bar = progress.progress_bar(range(3), file=_Terminal())
    assert bar.mininterval == 0.1 and bar.maxinterval == 10.0
    bar.close()
    explicit = progress.progress_bar(range(3), file=io.StringIO(), mininterval=1.0)
    assert explicit.mininterval == 1.0
    explicit.close()
