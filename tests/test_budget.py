"""A time budget as a recipe (core/training/budget.py and the Trainer that follows it).

BudgetPlan is plain arithmetic: the expected totals below are worked out by hand from its formula
(steps left = ⌊(budget − elapsed − reserve) / (step seconds + preview seconds / preview_every)⌋). The Trainer
tests run real (tiny, 2-D) training and check what a budgeted run must show: a planned step count, a learning
rate annealed by the end, an ETA that never exceeds the budget, and previews early and at every end.
"""

import dataclasses
import math

import pytest

from core.training import trainer as trainer_module
from core.training.budget import BudgetPlan, format_budget
from core.training.config import learning_rate_at
from core.training.trainer import Trainer
from tests.test_training import WAIT, run_to_end, toy_config


def calibrated(plan: BudgetPlan, seconds: float, steps: int) -> BudgetPlan:
    plan.record_step(99.0)  # the segment's first step: left out of the measurement
    for _ in range(steps):
        plan.record_step(seconds)
    return plan


def test_no_plan_before_three_timed_steps():
    plan = BudgetPlan(100.0, first_step=0, lock_step=10)
    plan.record_step(99.0)
    plan.record_step(0.5)
    plan.record_step(0.5)
    assert plan.seconds_per_step() is None and plan.update(3, 1.0) is None and plan.total_steps is None


def test_the_plan_fills_the_budget_by_hand():
    # 0.5 s per step (the 99 s first step left out); reserve max(1, 0.02 * 100) = 2 s:
    # at step 4 after 2 s: ⌊(100 − 2 − 2) / 0.5⌋ = 192 steps left -> total 196.
    plan = calibrated(BudgetPlan(100.0, first_step=0, lock_step=10), 0.5, 3)
    assert plan.seconds_per_step() == 0.5
    assert plan.update(4, 2.0) == 196 and plan.total_steps == 196


def test_previews_are_paid_for_in_the_plan():
    # a 5 s preview every 50 steps adds 0.1 s per step and 5 s to the reserve:
    # ⌊(100 − 2 − (2 + 5)) / 0.6⌋ = ⌊151.67⌋ = 151 -> total 155
    plan = calibrated(BudgetPlan(100.0, first_step=0, lock_step=10, preview_every=50), 0.5, 3)
    plan.record_preview(5.0)
    assert plan.update(4, 2.0) == 155


def test_a_resumed_segment_plans_from_its_own_step_and_respects_the_cap():
    plan = calibrated(BudgetPlan(60.0, first_step=1000, lock_step=1000, max_steps=1050), 0.1, 3)
    # ⌊(60 − 1 − 1.2) / 0.1⌋ = 578 steps left from step 1004, capped at 1050
    assert plan.fitting_total(1004, 1.0) == 1050
    assert BudgetPlan(60.0, first_step=1000, lock_step=1000).record_step(1.0) is None


def test_after_the_warm_up_only_a_real_miss_replans():
    plan = calibrated(BudgetPlan(100.0, first_step=0, lock_step=10), 0.5, 3)
    assert plan.update(4, 2.0) == 196  # before the lock: follows the measurement
    # after the lock, at step 100 after 50.5 s: projected end 50.5 + 96·0.5 = 98.5 s, 0.5 s past the planned end
    # (budget less the 2 s reserve), within half the reserve -> the plan stays (a fresh one would say
    # 100 + ⌊(100 − 50.5 − 2)/0.5⌋ = 195); 5 s early (at 45 s) is within 5 % of the budget -> it stays too
    assert plan.update(100, 50.5) is None and plan.update(100, 45.0) is None and plan.total_steps == 196
    # 2 s late (at 52 s) is more than half the reserve: re-planned to 100 + ⌊(100 − 52 − 2)/0.5⌋ = 192
    assert plan.update(100, 52.0) == 192 and plan.replans_after_lock == 1
    plan.total_steps = 196
    for _ in range(200):
        plan.record_step(0.75)  # the last 200 steps decide the speed: now 0.75 s per step
    # at step 120 after 70 s: projected end 70 + 76·0.75 = 127 s, 29 s past 98 s (> 10 % of 100 s): re-plan to
    # 120 + ⌊(100 − 70 − 2)/0.75⌋ = 120 + ⌊37.3⌋ = 157
    assert plan.update(120, 70.0) == 157 and plan.replans_after_lock == 2
    assert "re-planned 2×" in plan.describe()
    # at step 150 after 112 s nothing fits any more (projected 112 + 7·0.75 s): one more step, then the
    # budget itself stops the run
    assert plan.update(150, 112.0) == 151 and plan.replans_after_lock == 3


def test_describe_and_format_budget():
    plan = calibrated(BudgetPlan(120.0, first_step=0, lock_step=10), 0.25, 3)
    assert plan.describe() == "measuring the speed to plan the 120 s budget"
    plan.update(4, 1.0)
    assert plan.describe() == f"{plan.total_steps:,} steps planned for the 2-minute budget (4.0 steps/s measured)"
    assert format_budget(300.0) == "5-minute" and format_budget(90.0) == "90 s"


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_a_budget_must_be_a_positive_number(bad):
    with pytest.raises(ValueError, match="budget seconds"):
        BudgetPlan(bad, first_step=0, lock_step=0)


# ------------------------------------------------------------------------------------------- the Trainer
def test_a_budgeted_run_plans_its_steps_and_anneals_within_the_budget():
    config = toy_config(total_steps=10_000_000, lr_schedule="cosine", warmup_steps=5, preview_every=0)
    trainer = Trainer(config, max_seconds=1.5)
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state in ("finished", "stopped")
    planned = trainer.config.total_steps
    assert 5 < planned < 10_000_000  # the budget, not the config's 10 M steps, set the run's length
    assert snapshot.step == planned or "time budget" in (snapshot.message or "")
    # the cosine decay ran (almost) to its end: the last step's rate is a small fraction of the peak
    assert learning_rate_at(trainer.config, snapshot.step - 1) <= 0.25 * config.learning_rate
    assert snapshot.preview is not None and snapshot.preview.step == snapshot.step  # a preview at the end
    assert "planned for the 1.5 s budget" in trainer.budget_plan.describe()


def test_the_configs_steps_cap_the_plan_and_the_cut_off_without_a_plan():
    capped = Trainer(toy_config(total_steps=25, preview_every=0), max_seconds=30.0)
    capped.start()
    run_to_end(capped)
    assert capped.state == "finished" and capped.step == 25
    cut = Trainer(toy_config(total_steps=10_000_000, preview_every=0), max_seconds=0.3, plan_budget=False)
    cut.start()
    run_to_end(cut)
    assert cut.state == "stopped" and cut.config.total_steps == 10_000_000 and "time budget of 0.3 s" in cut.snapshot().message


def test_the_eta_never_exceeds_the_budget():
    seen = []

    def hook(step, loss):
        if step == 3:
            seen.append(trainer.snapshot())
        return loss

    trainer = Trainer(toy_config(total_steps=10_000_000, preview_every=0), max_seconds=2.0, plan_budget=False, loss_hook=hook)
    trainer.start()
    trainer.join(WAIT)
    (during,) = seen
    assert during.budget_seconds == 2.0 and during.eta_seconds is not None and during.eta_seconds <= 2.0


def test_an_early_preview_and_one_at_a_user_stop(monkeypatch):
    monkeypatch.setattr(trainer_module, "EARLY_PREVIEW_SECONDS", 0.0)
    previews = []

    def hook(step, loss):
        previews.append(trainer.snapshot().preview)
        if step == 30:
            trainer.stop()
        return loss

    trainer = Trainer(toy_config(total_steps=1000, preview_every=0), loss_hook=hook)
    trainer.start()
    run_to_end(trainer)
    assert previews[0] is None and previews[2] is not None and previews[2].step == 1  # drawn after the first step
    assert trainer.state == "stopped" and trainer.snapshot().preview.step == trainer.step == 31


def test_a_resumed_segment_gets_a_plan_of_its_own():
    trainer = Trainer(toy_config(total_steps=20, preview_every=0))
    trainer.start()
    run_to_end(trainer)
    trainer.max_seconds = 30.0
    trainer.resume(total_steps=45)
    run_to_end(trainer)
    plan = trainer.budget_plan
    assert plan.first_step == 20 and plan.max_steps == 45 and trainer.state == "finished" and trainer.step == 45


def test_the_train_pages_status_line_shows_the_budget_not_a_step_eta():
    from ui.training_panel import status_line

    trainer = Trainer(toy_config(total_steps=40, preview_every=0))
    base = trainer.snapshot()
    running = dataclasses.replace(base, state="running", progress=dataclasses.replace(base.progress, step=10), total_steps=600,
                                  eta_seconds=80.0, budget_seconds=120.0)
    assert status_line(running).endswith("step 10 / 600 · 1:20 left of the 2-minute budget")
    unbudgeted = dataclasses.replace(running, budget_seconds=None, eta_seconds=3725.0)
    assert status_line(unbudgeted).endswith("step 10 / 600 · ETA 1h02")


def test_a_head_start_counts_against_the_budget():
    """Seconds spent before training (a process's imports and data) are part of the budget: with all of it spent,
    the run takes one step and stops."""
    trainer = Trainer(toy_config(total_steps=10_000, preview_every=0), max_seconds=2.0)
    trainer.budget_head_start = 5.0
    trainer.start()
    run_to_end(trainer)
    assert trainer.state == "stopped" and trainer.step == 1 and "time budget of 2 s" in trainer.snapshot().message


def test_the_command_line_counts_its_own_start_up(tmp_path, capsys):
    from core import train as train_cli

    flags = ["--dataset", "two_moons", "--T", "20", "--toy-points", "256", "--steps", "500", "--preview-every", "0",
             "--device", "cpu", "--quiet"]
    started = train_cli.time.monotonic() - 1000.0  # as if the process had spent 1,000 s starting up
    assert train_cli.main([*flags, "--max-seconds", "60", "--out", str(tmp_path / "m.safetensors")], started=started) == 0
    assert "stopped at step 1/500 (stopped after its time budget of 60 s" in capsys.readouterr().out


def test_the_backstop_leaves_time_for_the_final_preview_and_the_save():
    plan = BudgetPlan(120.0, first_step=0, lock_step=10)
    assert plan.cut_off_seconds == 120.0 - 1.5  # no preview measured yet: only the save and the exit
    assert BudgetPlan(2.0, first_step=0, lock_step=0).cut_off_seconds == 2.0 - 0.2  # a tenth of a short budget
    plan.record_preview(2.0)
    assert plan.cut_off_seconds == 120.0 - 2.0 - 1.5


def test_process_age_counts_the_interpreters_start():
    import subprocess
    import sys

    code = "import time; time.sleep(1.0); from core import runtime; print(runtime.process_age_seconds())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-300:]
    assert 1.0 <= float(done.stdout) < 60.0


def test_the_trainer_reports_a_guarded_steps_summary_one_step_late_and_every_step_once():
    """With the device guard (CUDA's path, forced here on the CPU) each step's summary arrives with the next one;
    the Trainer records each at the step it reports and settles the last one before the final preview."""
    from core.training.step import build_state

    config = toy_config(total_steps=30, preview_every=0)
    trainer = Trainer(config)
    trainer.train_state = build_state(trainer.config, device_guard=True)
    trainer.start()
    run_to_end(trainer)
    snapshot = trainer.snapshot()
    assert snapshot.state == "finished" and snapshot.step == 30 and snapshot.preview.step == 30
    assert snapshot.progress.loss_steps == tuple(range(1, 31)) and trainer.train_state.in_flight is None
