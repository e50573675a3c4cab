"""The time budget of one invocation: when the loop stops, and (``--fit-epochs``) how many epochs fit in it.

The budget counts the invoking process only, so a resumed run gets it again.
"""

from __future__ import annotations

import numpy as np

FIT_AFTER_STEPS = 12  # --fit-epochs measures this many steps (or the first epoch, if shorter) before it plans
FIT_SAFETY = 0.92  # of the budget left that the fitted epochs plan to use (the step time drifts)


def out_of_budget(used: float, step_times: list[float], steps_done: int, max_steps: int | None,
                  time_budget: float | None) -> bool:
    """Whether the loop stops before its next step: ``max_steps`` steps are done, or the next step, at the
    recent typical step time, would end past ``time_budget`` (``used`` seconds are gone)."""
    stop = max_steps is not None and steps_done >= max_steps
    if time_budget is not None:
        typical = float(np.median(step_times[-10:])) if step_times else 0.0
        stop = stop or used + typical > time_budget
    return stop


def fitted_epochs(time_budget: float, used: float, step_times: list[float], steps_per_epoch: int, t_val: float,
                  val_every: int, epochs: int) -> tuple[int, float]:
    """The epochs (at most ``epochs``, at least 1) that fit in ``time_budget`` at the measured step times and
    validation time ``t_val``, after ``used`` seconds; and the typical step time they were planned with.

    The first steps (when there are more than four) are left out of the step time: they warm up.
    """
    warm = step_times[2:] if len(step_times) > 4 else step_times
    per_step = float(np.median(warm))
    per_epoch = steps_per_epoch * per_step + t_val / val_every
    done = len(step_times) * per_step
    fit = int(FIT_SAFETY * (time_budget - used + done) / per_epoch)
    return max(1, min(epochs, fit)), per_step
