"""Run control for Keras `fit`: exact step counts, step-level backups, clean stops on signals.

fit_and_save (tfcomp.training) puts these together: `StepControl` ends a run after exactly
its number of optimizer steps and, once `SignalFlag` has seen SIGINT or SIGTERM, at the
end of the current batch after `RunBackup` has saved the training state; the caller then
raises `TrainingInterrupted`, a SystemExit with status 128 + the signal number.
"""

import os
import signal
import sys
import threading

import tensorflow as tf

__all__ = ["TrainingInterrupted", "SignalFlag", "RunBackup", "StepControl", "interrupted",
           "optimizer_step"]


def optimizer_step(model):
    """The number of optimizer steps the model has taken (any strategy's variable)."""
    return int(tf.keras.backend.get_value(model.optimizer.iterations))


class TrainingInterrupted(SystemExit):
    """A run stopped by a signal after saving its backup: exit status 128 + the signal.

    130 for SIGINT (Ctrl-C), 143 for SIGTERM. Being a SystemExit, it ends a training script
    with that status and no traceback. `step` is the optimizer step the backup holds (None
    when the signal came before the first step).
    """

    def __init__(self, signum, step=None):
        super().__init__(128 + signum)
        self.signum, self.step = signum, step


class SignalFlag:
    """Context manager: inside it, SIGINT and SIGTERM only set `signum`.

    The first signal restores the previous handlers, so a second Ctrl-C interrupts at once
    (a KeyboardInterrupt, without a backup). Outside the main thread, where handlers cannot
    be set, it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        self._restore()

    @property
    def name(self):
        """The signal's name (e.g. "SIGINT"), or None."""
        return None if self.signum is None else signal.Signals(self.signum).name

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()

    def _restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


class RunBackup(tf.keras.callbacks.BackupAndRestore):
    """BackupAndRestore every `save_freq` optimizer steps that also says where a run resumes
    ("resuming from step S"), saves on demand (`save_now`) and keeps the backup of a run
    that stops unfinished (`keep`); a finished run deletes it, as BackupAndRestore does.

    Saving mid-epoch records the epoch and batch, so a resumed `fit` continues inside the
    epoch (Keras 2.14's step-level BackupAndRestore); resume with the same --steps-per-epoch.
    """

    def __init__(self, backup_dir, save_freq):
        if not isinstance(save_freq, int) or save_freq < 1:
            raise ValueError(f"backup every N >= 1 steps, got {save_freq!r}")
        super().__init__(backup_dir, save_freq=save_freq)
        self.keep = False

    def on_train_begin(self, logs=None):
        # The chief's directory is the one every worker restores from.
        resuming = tf.train.latest_checkpoint(os.path.join(self.backup_dir, "chief")) is not None
        super().on_train_begin(logs)
        if resuming:
            print(f"resuming from step {optimizer_step(self.model)}", flush=True)

    def save_now(self, batch):
        """Backs up the state after `batch` of the current epoch (call it at a batch's end;
        nothing to do when the periodic backup has just saved that batch)."""
        if self._batches_count:
            self._backup(epoch=self._current_epoch, batch=batch)

    def on_train_end(self, logs=None):
        self.delete_checkpoint = not self.keep
        super().on_train_end(logs)


class StepControl(tf.keras.callbacks.Callback):
    """Stops `fit` after `steps` optimizer steps in all, counted from the optimizer's step
    count when training begins (the restored one on resume), or, once `flag` has a signal,
    at the end of the current batch, after `backup.save_now`.

    Afterwards `interrupted_at` is the step the backup holds, or None when the run went to
    its end (a signal during the last batch changes nothing). Place it after the
    BackupAndRestore callback, which restores the step count in on_train_begin.
    """

    def __init__(self, steps, backup, flag):
        super().__init__()
        self.steps, self.backup, self.flag = int(steps), backup, flag
        self.done = 0
        self.interrupted_at = None

    def on_train_begin(self, logs=None):
        self.done = optimizer_step(self.model)
        self.interrupted_at = None

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done >= self.steps:
            self.model.stop_training = True
        elif self.flag.signum is not None and self.interrupted_at is None:
            self.backup.save_now(batch)
            self.backup.keep = True
            self.interrupted_at = self.done
            self.model.stop_training = True


def interrupted(flag, step, backup_dir):
    """Prints the one line a stopped run ends with (stderr) and returns the exception."""
    where = f"after step {step}: backup in {backup_dir}" if step is not None else \
        "before the first step"
    print(f"interrupted by {flag.name} {where}; run the same command again to continue",
          file=sys.stderr, flush=True)
    return TrainingInterrupted(flag.signum, step)
