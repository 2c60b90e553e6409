"""Training: config.py (TrainConfig and every recipe), step.py (the algorithm: TrainState, train_step), stats.py
(what a run reports), saving.py (checkpoints of a run), trainer.py (the run state machine), and the server side:
worker.py (one process per job), job.py (one job and its JobState),
registry.py (JobRegistry: slots, queue, fairness), limits.py (how many at once), run_store.py (the run store on disk).
"""
