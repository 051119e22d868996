"""Stop a training run cleanly on SIGTERM, the signal a preemption or a scheduler sends.

    watcher = preemption.Watcher()          # installs the SIGTERM handler (one process)
    try:
        for s in range(start, total_steps):
            ...one step...
            if watcher.reached(s + 1):      # every process gets the same answer at the same step
                ...save a checkpoint at step s + 1, then stop...
    finally:
        ...wait for the save...
        watcher.close()                     # puts the previous handler back
    raise preemption.Preempted(s + 1)       # exit status EXIT_CODE

Two ways a SIGTERM is noticed, chosen by whether the JAX distributed runtime is up:

- One process, no distributed runtime: `Watcher` installs a SIGTERM handler that only sets a flag
  (nothing else is safe in a signal handler); `reached(step)` returns the flag. The previous handler
  is put back by `close()`. Python runs handlers in the main thread only, so a watcher made in another
  thread installs nothing and never reports a preemption.
- `jax.distributed.initialize` was called (a pod, or several processes): the runtime's preemption sync
  manager already listens for SIGTERM (installing a Python handler would replace its handler), and
  `reached(step)` is `jax.experimental.multihost_utils.reached_preemption_sync_point(step)`: after any
  process is signalled, every process sees True at the same step (the largest step any of them has
  reached, plus one), so they all save that step together. It must be called at every step by every
  process, starting from the same step. With `jax_enable_preemption_service` off there is no sync
  manager: the watcher warns once and a SIGTERM ends the run as it would without it.

`Preempted` is a `SystemExit` with status 143 (128 + SIGTERM, what a shell reports for a process ended by
SIGTERM, so a scheduler's retry rule for preempted jobs still applies): a script that does not catch it
exits with that status and no traceback, after the checkpoint is committed.
"""

from __future__ import annotations

import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils

EXIT_CODE = 128 + signal.SIGTERM  # 143


class Preempted(SystemExit):
    """Raised by `loop.train` after it saved a checkpoint at `step` on a preemption; exit status EXIT_CODE."""

    def __init__(self, step: int):
        super().__init__(EXIT_CODE)
        self.step = step


class Watcher:
    """Whether the run was asked to stop, read at step boundaries (see the module docstring). Making one
    installs the SIGTERM handler where that is the mechanism; `close()` puts the previous handler back."""

    def __init__(self):
        self._signalled = False
        self._sync = False
        self._installed = False
        self._previous = None
        if jax.distributed.is_initialized():
            self._sync = bool(jax.config.jax_enable_preemption_service)
            if not self._sync:
                logging.warning("jax_enable_preemption_service is off: a SIGTERM will not save a checkpoint")
        elif threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True

    def _on_sigterm(self, signum, frame) -> None:
        del signum, frame
        self._signalled = True

    def reached(self, step: int) -> bool:
        """True if the run should save `step` (the number of steps done) and stop."""
        if self._sync:
            return bool(multihost_utils.reached_preemption_sync_point(int(step)))
        return self._signalled

    def close(self) -> None:
        """Put back the SIGTERM handler that was there before (the default one if it was not set from Python);
        a no-op if nothing was installed, or on a second call."""
        if self._installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False


__all__ = ["EXIT_CODE", "Preempted", "Watcher"]
