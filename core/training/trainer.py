"""`Trainer`: runs one TrainConfig's training loop (core/training/step.py) in a background thread.

The run state machine:  idle → running → (stopping →) stopped | finished | failed, and stopped/finished →
running again with resume() (a job registry adds "queued" and "crashed" around it). A loss or gradient that is not
finite ends the run as "failed" (the weights are those before the bad step).

A time budget (`max_seconds`) is a recipe, not a cut-off: a `core.training.budget.BudgetPlan` measures the speed
of the first steps and sets total_steps to what fits in the budget, so the learning rate (cosine) anneals to 0
within it; the budget also stops the segment by itself if the plan overruns. Previews: every `preview_every`
steps, once early (after EARLY_PREVIEW_SECONDS of a segment without one, so a two-minute run shows something
within seconds), and at every end (finished, stopped, budget spent), always from the EMA weights.

Nothing here imports Streamlit: a caller polls `Trainer.snapshot()`. Checkpoints: core/training/saving.py.
Device and CPU threads: core/runtime.py.

CPU threads: torch's thread count belongs to the process (and, under OpenMP, to each thread that runs torch code).
A Trainer given a `thread_policy` (core.runtime.ThreadPolicy) lets it re-decide the count in the training thread
before every step, never during one, and its device label then names the count in force. Only a process that runs
one job may do that: the training worker (core/training/worker.py) does. Trainers that share a process with other
work (`python -m core.train`, the registry's in-process ThreadLauncher in tests, a notebook) get no policy and keep
the count `runtime.configure_cpu_threads()` set once for the process, so two of them never fight over it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from pathlib import Path

import torch

from core import runtime
from core.checks import check_int, check_number
from core.nets import build as models
from core.training import saving
from core.training.budget import BudgetPlan
from core.training.config import TrainConfig, learning_rate_at
from core.training.stats import JobState, LossHistory, Preview, ProgressRecord, Snapshot, TimestepProfile
from core.training.step import TrainingFailed, build_state, make_preview, queue_step, settle

RATE_WINDOW = 50  # images/s is measured over the last this-many steps
EARLY_PREVIEW_SECONDS = 15.0  # a segment without a preview draws one after this much training time


class Trainer:
    """Trains one model for one TrainConfig in a daemon thread.

    start() / stop() / resume() / save(path) / snapshot() / export_model() may be called from any thread.
    `loss_hook(step, loss) -> loss`, if given, sees every batch loss (a 0-d tensor) before the backward pass
    and returns the loss to use: for monitoring, extra regularisers, or injecting faults in tests.
    `on_exit(trainer)` is called (outside the trainer's locks) whenever the thread ends.
    `dataset` may pass the already loaded core.data.datasets.Dataset of config.dataset.
    `resume_from` (a saving.ResumePoint of the same config) continues a saved run: use `from_checkpoint`.
    `max_seconds` (None = no limit): each start/resume segment plans its step count to end within that much time,
    at most config.total_steps (`plan_budget`, default True: see the module docstring), and stops at it regardless.
    `thread_policy` (a core.runtime.ThreadPolicy, or anything with update() -> threads) re-decides the CPU thread
    count before each step, from the training thread; only for a process of its own (see the module docstring).
    """

    def __init__(self, config: TrainConfig, loss_hook=None, on_exit=None, dataset=None,
                 resume_from: saving.ResumePoint | None = None, max_seconds: float | None = None, thread_policy=None,
                 plan_budget: bool = True):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = copy.deepcopy(config).validate()
        self.loss_hook, self.on_exit, self.thread_policy = loss_hook, on_exit, thread_policy
        self.max_seconds = None if max_seconds is None else check_number("max_seconds", max_seconds, 0.0, open_low=True)
        self.plan_budget = plan_budget
        # seconds of the budget already spent before a segment starts (a process's start-up: imports, data, model),
        # set by whoever launched the run (the command line, a worker); the plan, the cut-off and the ETA count them
        self.budget_head_start = 0.0
        self.budget_plan: BudgetPlan | None = None  # the running segment's plan, when it has a budget
        self.train_state = build_state(self.config, dataset)
        self.diffusion = self.train_state.diffusion
        self.device = self.train_state.device
        self.data_kind = self.train_state.data_kind
        self.data_shape = tuple(self.train_state.data.shape[1:])
        self.parameters = models.count_parameters(self.model)
        self.history = LossHistory()
        self.profile = TimestepProfile(self.diffusion.T)
        self._lock = threading.Lock()  # guards the statistics and the run state below
        self._model_lock = threading.Lock()  # held while a step changes weights, optimizer and step together
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = JobState.IDLE
        self._error: str | None = None
        self._message: str | None = None
        self._last_loss: float | None = None
        self._elapsed_before = 0.0  # training time of earlier start/resume segments
        self._run_started: float | None = None
        self._rate_window: deque = deque(maxlen=RATE_WINDOW)
        self._preview: Preview | None = None
        self._label_threads: int | None = None  # the thread count the device label names, once a policy set it
        if resume_from is not None:
            if resume_from.config != self.config:
                raise ValueError("resume_from must hold a run of the same TrainConfig")
            saving.restore(self.train_state, resume_from)
            self.history, self.profile = resume_from.history, resume_from.profile
            self._elapsed_before, self._last_loss = resume_from.elapsed_seconds, resume_from.last_loss
            self._state = JobState.FINISHED if self.step >= self.config.total_steps else JobState.STOPPED
        if self.device.type == "cpu" and thread_policy is None:
            runtime.configure_cpu_threads()
        self._device_name = runtime.describe_device(self.device, self.train_state.autocast)

    # The algorithm's state, readable as attributes.
    model = property(lambda self: self.train_state.model)
    ema = property(lambda self: self.train_state.ema)
    optimizer = property(lambda self: self.train_state.optimizer)
    generator = property(lambda self: self.train_state.generator)
    step = property(lambda self: self.train_state.step)

    @classmethod
    def from_checkpoint(cls, path, device: str | None = None, **options) -> Trainer:
        """A stopped (or finished) Trainer that continues the run saved at `path`; resume() picks it up.
        device overrides the saved config's device; options go to the constructor (loss_hook, max_seconds...)."""
        point = saving.read_resume_point(path, device)
        return cls(point.config, resume_from=point, **options)

    # ----------------------------------------------------------------------------------- control
    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def start(self) -> None:
        """Begin training (a job that has not run yet)."""
        with self._lock:
            if self._state != JobState.IDLE or self.step > 0:
                raise ValueError(f"start() needs a job that has not run yet; this one is {self._state!r} "
                                 f"at step {self.step} (use resume())")
            self._launch()

    def resume(self, total_steps: int | None = None) -> None:
        """Continue a stopped job (or a finished one, given a larger total_steps) from where it left off,
        with the same optimizer state, step count and generator state. Waits if a stop is under way."""
        if self.state == JobState.STOPPING:
            self.join()  # the stop takes effect after the current step
        with self._lock:
            if self._state not in (JobState.STOPPED, JobState.FINISHED):
                raise ValueError(f"resume() needs a stopped job; this one is {self._state!r}")
            if total_steps is not None:
                self._set_total_steps(total_steps)
            if self.step >= self.config.total_steps:
                raise ValueError(f"the job already did all {self.config.total_steps} steps; "
                                 f"pass a larger total_steps to train further")
            self._launch()

    def set_total_steps(self, total_steps: int) -> None:
        """Change the planned number of steps of a job that is not training (must exceed the steps done)."""
        with self._lock:
            if self._state in (JobState.RUNNING, JobState.STOPPING):
                raise ValueError(f"total_steps can only change while the job is not training; it is {self._state!r}")
            self._set_total_steps(total_steps)

    def _set_total_steps(self, total_steps: int) -> None:  # caller holds self._lock
        check_int("total_steps", total_steps, self.step + 1)
        self.config.total_steps = total_steps
        self.train_state.config = self.config

    def _launch(self) -> None:  # caller holds self._lock
        self._stop_requested.clear()
        self._state, self._error, self._message = JobState.RUNNING, None, None
        self._run_started = time.monotonic()
        self._rate_window.clear()
        self.budget_plan = None
        if self.max_seconds is not None and self.plan_budget:
            self.budget_plan = BudgetPlan(self.max_seconds, first_step=self.step,
                                          lock_step=max(self.step, self.config.warmup_steps),
                                          preview_every=self.config.preview_every, max_steps=self.config.total_steps)
        self._thread = threading.Thread(target=self._run, name=f"trainer-{id(self):x}", daemon=True)
        self._thread.start()

    def stop(self, message: str | None = None) -> None:
        """Ask the loop to stop before its next step (the model stays consistent). Non-blocking."""
        with self._lock:
            if self._state == JobState.RUNNING:
                self._state, self._message = JobState.STOPPING, message
                self._stop_requested.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the training thread to end; True when no thread is running."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ------------------------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            while self.step < self.config.total_steps and not self._stop_requested.is_set():
                self._apply_thread_policy()
                self._step_once()
                self._follow_budget()
                if self._preview_due():
                    self._make_preview()
                if self.max_seconds is not None and self._segment_seconds() >= self._cut_off_seconds():
                    self.stop(f"stopped after its time budget of {self.max_seconds:g} s; resume it to train further")
            self._settle()
            if self._preview is None or self._preview.step != self.step:
                self._make_preview()  # every end shows the model it ends with
            final_state = JobState.STOPPED if self.step < self.config.total_steps else JobState.FINISHED
            error = None
        except TrainingFailed as failure:
            final_state, error = JobState.FAILED, str(failure)
        except Exception as exc:  # any error in the thread ends the job visibly instead of silently
            final_state, error = JobState.FAILED, f"training stopped at step {self.step + 1}: {type(exc).__name__}: {exc}"
        with self._lock:
            self._elapsed_before += time.monotonic() - self._run_started
            self._run_started = None
            self._state, self._error = final_state, error
        if self.on_exit is not None:
            self.on_exit(self)

    def _segment_seconds(self) -> float:
        """Budget seconds this segment has used: its training time plus the head start (see __init__)."""
        return time.monotonic() - self._run_started + self.budget_head_start

    def _cut_off_seconds(self) -> float:
        """The budget's backstop: the plan's (leaving time for the final preview and the save), else the budget."""
        return self.max_seconds if self.budget_plan is None else self.budget_plan.cut_off_seconds

    def _preview_due(self) -> bool:
        """Every preview_every steps, and once early in a segment that has none yet."""
        every = self.config.preview_every
        if every and self.step % every == 0:
            return True
        return self._preview is None and self._segment_seconds() >= EARLY_PREVIEW_SECONDS

    def _follow_budget(self) -> None:
        """Let the budget plan set total_steps (in the training thread, between steps: see core/training/budget.py)."""
        plan = self.budget_plan
        if plan is None:
            return
        total = plan.update(self.step, self._segment_seconds())
        if total is not None:
            with self._lock:
                self.config.total_steps = total

    def _apply_thread_policy(self) -> None:
        """Between two steps, in the training thread: the policy may change the thread count (on the CPU only);
        the device label then reads the count now in force in this thread."""
        if self.thread_policy is None or self.device.type != "cpu":
            return
        self.thread_policy.update()
        threads = torch.get_num_threads()  # this thread's count: what the next step runs with
        if threads != self._label_threads:
            label = runtime.describe_device(self.device, self.train_state.autocast)
            with self._lock:
                self._device_name, self._label_threads = label, threads

    def _step_once(self) -> None:
        """One update; on CUDA (state.device_guard) its summary arrives one step later, so the host never waits for
        the device within a step (core/training/step.py queue_step)."""
        started = time.perf_counter()
        with self._model_lock:
            result = queue_step(self.train_state, self.loss_hook)
        if self.budget_plan is not None:
            self.budget_plan.record_step(time.perf_counter() - started)
        self._record(result)

    def _record(self, result) -> None:
        """A step's summary into the statistics, at the step it reports (None: nothing reported yet)."""
        if result is None:
            return
        with self._lock:
            self._last_loss = result.loss
            self.history.add(result.step, result.loss)
            self.profile.add(result.t, result.mse)
            self._rate_window.append((time.monotonic(), result.step))

    def _settle(self) -> None:
        """Report the step still in flight (CUDA), before the weights are read: previews, saves, the run's end."""
        with self._model_lock:
            result = settle(self.train_state)
        self._record(result)

    def _make_preview(self) -> None:
        self._settle()
        started = time.perf_counter()
        with self._model_lock:
            preview = make_preview(self.train_state)
        if self.budget_plan is not None:
            self.budget_plan.record_preview(time.perf_counter() - started)
        with self._lock:
            self._preview = preview

    # ------------------------------------------------------------------------------------ reading
    def _elapsed_now(self) -> float:  # caller holds self._lock
        running = self._run_started is not None
        return self._elapsed_before + (time.monotonic() - self._run_started if running else 0.0)

    def snapshot(self) -> Snapshot:
        with self._lock:
            rate = 0.0
            if len(self._rate_window) >= 2:
                (t0, s0), (t1, s1) = self._rate_window[0], self._rate_window[-1]
                rate = (s1 - s0) * self.config.batch_size / max(t1 - t0, 1e-9)
            remaining = self.config.total_steps - self.step
            eta = remaining * self.config.batch_size / rate if rate > 0 else (0.0 if remaining == 0 else None)
            running = self._run_started is not None
            if running and self.max_seconds is not None:  # a budget is never exceeded: the ETA says so
                budget_left = max(0.0, self.max_seconds - self._segment_seconds())
                eta = budget_left if eta is None else min(eta, budget_left)
            plan = self.budget_plan
            return Snapshot(
                state=self._state, error=self._error, message=self._message,
                progress=ProgressRecord.of_run(self.step, self._elapsed_now(), self.history, self.profile),
                total_steps=self.config.total_steps, loss_bucket=self.history.bucket, last_loss=self._last_loss,
                profile_counts=list(self.profile.counts), images_per_second=rate, eta_seconds=eta,
                learning_rate=learning_rate_at(self.config, min(self.step, self.config.total_steps - 1)),
                device=self._device_name, parameters=self.parameters, preview=self._preview,
                config=self.config.to_json(), budget_seconds=self.max_seconds,
                budget_plan=plan.describe() if plan is not None and running else None)

    def export_model(self, device="cpu"):
        """A copy of the EMA model (eval mode, on `device`) for sampling; training may continue meanwhile."""
        with self._model_lock:
            model = copy.deepcopy(self.ema)
        return model.to(device, memory_format=torch.contiguous_format).eval()

    def save(self, path) -> Path:
        """Write a checkpoint (EMA + raw weights, optimizer and generator state) at any time."""
        with self._model_lock, self._lock:
            return saving.save_run(path, self.train_state, self.history, self.profile, self._last_loss,
                                   self._elapsed_now(), self._device_name)
