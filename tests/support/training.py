"""Crash-and-resume, the way the resume tests exercise the trainer."""

from __future__ import annotations

import pytest

from geneface.training.trainer import Trainer


def crash_then_resume(make_task, config, out, crash_after: int) -> tuple[dict, str]:
    """Train into `out` until a simulated crash after step `crash_after`, then resume to the
    end with a fresh task; returns the resumed run's result and the state it resumed from."""

    def crash(step):
        if step == crash_after:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(make_task(), config, out, progress=False, on_step=crash).fit()
    resumed_from = Trainer.latest_state(out).name
    return Trainer(make_task(), config, out, resume=True, progress=False).fit(), resumed_from
