"""How much of a person's video a person-specific model can use, and what that length buys.

`usable_minutes(ds)`: the minutes of tracked frames it trains on and is judged on (a dataset of
one video or a person of several clips). `length_advice(minutes)`: the one line `geneface
process` and `geneface dataset info` print below a length in `LENGTH_ADVICE`. The wording
lives here alone, so the measured curve (docs/person_length.md, from
benchmarks/bench_person_length.py) updates one table.
"""

from __future__ import annotations

from typing import Optional

import attrs

# (below this many minutes of training video, the line to print), shortest first; the first
# row whose bound the length is under applies.
LENGTH_ADVICE: tuple[tuple[float, str], ...] = (
    (1.0, "under 1 minute of training video: measured on GRID s1 (docs/person_length.md), 3 minutes trained for the "
          "quick profile's 4000 renderer steps drew a mouth moving 0.85x as much as the real one and beat copying the "
          "video by 2.5 dB in the face box, while 20 s and 1 minute at a short budget moved it 0.18-0.41x; "
          "GeneFace and its successors train a person on 3-5 minutes, and more video needs more training steps to pay off"),
)


@attrs.frozen
class UsableMinutes:
    training: float  # minutes of tracked frames a person-specific model trains on
    held_out: float  # minutes of tracked frames it is judged on (never trained on)

    def line(self) -> str:
        return (f"usable video: {self.training:.2f} min to train on, {self.held_out:.2f} min held out "
                f"({self.training + self.held_out:.2f} min)")

    def to_dict(self) -> dict:
        return {"training": round(self.training, 4), "held_out": round(self.held_out, 4)}


def usable_minutes(ds) -> UsableMinutes:
    """`ds`: a `geneface.core.dataset.Dataset` (a person's `PersonDataset` included)."""
    per_minute = 60.0 * ds.fps
    return UsableMinutes(len(ds.training_frames()) / per_minute, len(ds.held_out_frames()) / per_minute)


def length_advice(training_minutes: float) -> Optional[str]:
    """The line for a person with this many minutes to train on, or None when none applies."""
    for bound, text in LENGTH_ADVICE:
        if training_minutes < bound:
            return text
    return None
