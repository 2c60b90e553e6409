"""A time budget as a recipe: how many steps a run of S seconds should plan, so that its learning rate anneals
within the budget instead of being cut off at a high value.

A cosine learning-rate decay reaches 0 at `total_steps`; a run stopped by its clock long before then ends with
the rate still near its peak and an un-annealed model (issue 17: 555 of 1,800 steps in 300 s, the rate at 88%
of its peak). `BudgetPlan` measures the seconds per step as the run goes (the segment's first step, where
oneDNN and the allocator warm up, is left out) and sets total_steps to the steps that fit in what is left:

    steps left = ⌊(budget − elapsed − reserve) / (step seconds + preview seconds / preview_every)⌋

where the reserve covers the final preview and the checkpoint. The plan follows the measurement freely during
the learning-rate warm-up, where the rate does not depend on total_steps (so a run that is never re-planned
after its warm-up is exactly the run `--steps N` gives, N the planned total); after the warm-up it is re-planned
only when the projected end misses the budget by more than `tolerance` (the machine got slower or faster, e.g.
a second thread came or went). The budget stays a hard limit as well: the trainer stops at it whatever the plan.

The EMA needs no plan: its warm-up decay min(ema_decay, (1 + k)/(10 + k)) averages over about the last k/9 steps
at step k, a fixed share of whatever length the run has, until k ≈ 9/(1 − ema_decay) (9,000 steps at 0.999), far
beyond a lesson's budget on a CPU.

Plain arithmetic on numbers the trainer passes in: no clock, no torch, so tests drive it with exact values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.checks import check_int, check_number

MIN_CALIBRATION_STEPS = 3  # timed steps before the first plan
RESERVE_FRACTION = 0.02  # of the budget, kept for the final preview and the save
RESERVE_MIN_SECONDS = 1.0
TOLERANCE = 0.05  # after the warm-up, a projected end this share of the budget early is kept (later re-plans)
SAVE_SECONDS = 1.5  # kept after the cut-off for the checkpoint and the exit (the final preview's time is kept too)


@dataclass
class BudgetPlan:
    """The step count of one budgeted start/resume segment (see the module docstring).

    seconds: the budget of this segment; first_step: the step it starts at; lock_step: the step after which
    only a miss by more than `tolerance` re-plans (the end of the learning-rate warm-up); preview_every: steps
    between previews (0 = none during the run); max_steps: an upper bound on the total (None = none)."""

    seconds: float
    first_step: int
    lock_step: int
    preview_every: int = 0
    max_steps: int | None = None
    tolerance: float = TOLERANCE
    step_seconds: list = field(default_factory=list)  # timed steps of this segment, the first one left out
    preview_seconds: float | None = None  # the last preview's duration
    replans_after_lock: int = 0
    total_steps: int | None = None  # the current plan (None until MIN_CALIBRATION_STEPS steps are timed)
    _skipped_first: bool = False

    def __post_init__(self):
        check_number("budget seconds", self.seconds, 0.0, open_low=True)
        check_int("first_step", self.first_step, 0)
        check_int("lock_step", self.lock_step, 0)
        check_int("preview_every", self.preview_every, 0)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, self.first_step + 1)

    @property
    def reserve_seconds(self) -> float:
        """Kept free at the end of the budget: the final preview (as long as the last one took) and the save."""
        return max(RESERVE_MIN_SECONDS, RESERVE_FRACTION * self.seconds) + (self.preview_seconds or 0.0)

    @property
    def cut_off_seconds(self) -> float:
        """When the budget's backstop stops a segment that overran its plan: early enough for the final preview
        (as long as the last one took) and the save to end within the budget."""
        return max(0.0, self.seconds - (self.preview_seconds or 0.0) - min(SAVE_SECONDS, 0.1 * self.seconds))

    def seconds_per_step(self) -> float | None:
        """Measured seconds per step, previews spread over the steps between them (None until calibrated)."""
        if len(self.step_seconds) < MIN_CALIBRATION_STEPS:
            return None
        recent = self.step_seconds[-200:]  # the current speed, not the start's
        per_step = sum(recent) / len(recent)
        if self.preview_every and self.preview_seconds:
            per_step += self.preview_seconds / self.preview_every
        return per_step

    def record_step(self, seconds: float) -> None:
        """One step's duration (the segment's first step is left out: kernels and caches warm up there)."""
        if not self._skipped_first:
            self._skipped_first = True
            return
        self.step_seconds.append(seconds)

    def record_preview(self, seconds: float) -> None:
        self.preview_seconds = seconds

    def fitting_total(self, step: int, elapsed: float) -> int | None:
        """The total step count that ends the segment at its budget, from `step` after `elapsed` seconds."""
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        left = self.seconds - elapsed - self.reserve_seconds
        total = step + max(0, math.floor(left / per_step))
        total = max(total, step + 1)  # a plan always has one more step to take
        return total if self.max_steps is None else min(total, self.max_steps)

    def update(self, step: int, elapsed: float) -> int | None:
        """After a step: the new total when the plan changes, else None (see the module docstring)."""
        total = self.fitting_total(step, elapsed)
        if total is None or total == self.total_steps:
            return None
        if self.total_steps is not None and step >= self.lock_step:
            projected_end = elapsed + (self.total_steps - step) * self.seconds_per_step()
            late = projected_end - (self.seconds - self.reserve_seconds)
            # early by up to `tolerance` of the budget is fine (the run ends a little sooner); late by more than half
            # the reserve is not (the backstop would cut the run before its learning rate reaches 0)
            if -self.tolerance * self.seconds <= late <= 0.5 * self.reserve_seconds:
                return None
            self.replans_after_lock += 1
        self.total_steps = total
        return total

    def describe(self) -> str:
        """One line for the run's message: the plan and how it was measured."""
        per_step = self.seconds_per_step()
        if self.total_steps is None or per_step is None:
            return f"measuring the speed to plan the {self.seconds:g} s budget"
        text = (f"{self.total_steps:,} steps planned for the {format_budget(self.seconds)} budget "
                f"({1.0 / per_step:.1f} steps/s measured)")
        if self.replans_after_lock:
            text += f"; re-planned {self.replans_after_lock}× after the warm-up as the speed changed"
        return text


def format_budget(seconds: float) -> str:
    """"2-minute", "90 s" ...: how a budget is named in messages."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes}-minute"
    return f"{seconds:g} s"
