"""Which audio each frame of a person pairs with: the clips' audio-to-video offsets, and the rule
for the clips whose own offset is unknown.

`geneface process` estimates every clip's offset from the clip alone and moves its audio (and
features) when it is 2 frames or more (docs/av-offset.md); those clips' files already pair
sound and mouth, and are read as they are. A clip that cannot tell its offset (under 3 s of
tracked frames, no clear peak: GRID's 3-second clips, often) is left as recorded and flagged
`skip_training`. For one video, that is the whole person, and person training reads it as
recorded, as it always has (nothing better is known). For a person of many such clips, the
clips together can tell what each alone cannot: one person's clips are usually filmed and
muxed one way. So:

1. the clips whose offset is unknown are estimated **together** (`pooled_offset`: the same
   estimate, `geneface.processing.av_offset.estimate_offset`, over their frames joined with a
   gap of unusable frames between clips, so that no lagged pair spans two clips);
2. that estimate known: it is acted on by the same rule as one clip's (`decide`, mode auto):
   within -1..1 frames the clips are read as recorded, from 2 frames on each of their frames
   pairs with the audio that many frames later (`ClipOffset.frames`; features are shifted in
   whole frames, nothing is recomputed);
3. unknown only for want of a clear peak (short clips of one regular rhythm alias even
   together: GRID's sentences all scan alike) while the person has clips of known offset: those
   clips, as their files hold them (corrected), show where this person's well-paired clips
   peak (`reference_lag`, over at most REFERENCE_CLIPS of them); a best lag within 1 frame of
   it is the person's own, and the unknown clips are read as recorded;
4. still unknown: with some other clip of known offset, the unknown clips are left out of
   audio-paired training (as a corpus leaves them out); with none, the person is read as
   recorded and a warning says so (refusing would make a person of short clips untrainable).

Landmark-only readers (`landmark_projection`, post-processing) need no audio and read every
clip.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import attrs
import numpy as np

from geneface.core.dataset import FLAG_FAILED, Dataset
from geneface.core.landmarks68 import mouth_openness


@attrs.frozen
class ClipOffset:
    """How clip `index` of a person pairs with its audio: the mouth at frame t with the audio of
    frame t + `frames` (0: as its files hold it); `use` False: left out of audio training."""

    index: int
    frames: int = 0
    use: bool = True


def clip_offsets(datasets: Sequence[Dataset], where: str) -> list[ClipOffset]:
    """The rule of the module docstring for the clips `datasets` of one person, in order."""
    unknown = [k for k, d in enumerate(datasets) if (d.manifest.get("av_offset") or {}).get("skip_training")]
    out = [ClipOffset(k) for k in range(len(datasets))]
    if not unknown:
        return out
    if len(datasets) == 1:  # one video: read as recorded, as person training always has
        _warn(f"{where}: its audio-to-video offset is unknown (docs/av-offset.md); read as recorded")
        return out
    from geneface.processing import av_offset as av

    estimate = pooled_offset([datasets[k] for k in unknown])
    names = f"{len(unknown)} of its {len(datasets)} clips"
    if estimate.status == "ok":
        frames = av.decide("auto", estimate).applied_frames
        _warn(f"{where}: {names} have no audio-to-video offset of their own; estimated together at "
              f"{estimate.frames:+d} frames, " + (f"their audio paired {frames:+d} frames later" if frames
                                                  else "read as recorded"))
        for k in unknown:
            out[k] = ClipOffset(k, frames)
        return out
    known = [d for k, d in enumerate(datasets) if k not in set(unknown)]
    lag = _best_lag(estimate)
    if known and lag is not None:
        reference = reference_lag(known)
        if reference is not None and abs(lag - reference) <= 1:
            _warn(f"{where}: {names} have no audio-to-video offset of their own, nor a clear one together; their "
                  f"best lag together ({lag:+d}) is where the person's clips of known offset peak ({reference:+d}): "
                  "read as recorded")
            return out
    if known:
        _warn(f"{where}: {names} have no audio-to-video offset, even estimated together ({estimate.reason}); "
              "left out of audio training (docs/av-offset.md)")
        for k in unknown:
            out[k] = ClipOffset(k, 0, False)
        return out
    _warn(f"{where}: no clip can tell its audio-to-video offset, even all together ({estimate.reason}); "
          "read as recorded (docs/av-offset.md)")
    return out


def pooled_offset(datasets: Sequence[Dataset]):
    """One `OffsetEstimate` over several clips' tracked frames and audio (as their files hold
    it), joined with MAX_LAG + 1 unusable frames between clips."""
    from geneface.processing import av_offset as av

    gap = av.MAX_LAG + 1
    mouths, sounds, usable = [], [], []
    for ds in datasets:
        lm68 = ds.landmarks_image()
        n = len(lm68)
        samples = np.asarray(ds.audio().samples, np.float32)[: n * av.HOP]
        flags = ds.tracking()["flags"][:n]
        mouths += [mouth_openness(lm68), np.full(gap, np.nan)]
        sounds += [np.pad(samples, (0, n * av.HOP - len(samples))), np.zeros(gap * av.HOP, np.float32)]
        usable += [(np.asarray(flags) & FLAG_FAILED) == 0, np.zeros(gap, bool)]
    return av.estimate_offset(np.concatenate(mouths), np.concatenate(sounds), np.concatenate(usable))


REFERENCE_CLIPS = 64  # clips of known offset read for `reference_lag` (evenly spaced): bounded cost


def reference_lag(datasets: Sequence[Dataset]) -> Optional[int]:
    """The lag (frames) at which clips whose audio already pairs with their frames peak, pooled
    (at most REFERENCE_CLIPS of them, evenly spaced); None when even they show no clear peak."""
    from geneface.processing import av_offset as av

    step = max(1, -(-len(datasets) // REFERENCE_CLIPS))
    estimate = pooled_offset(list(datasets)[::step])
    return int(np.argmax(estimate.curve)) - av.MAX_LAG if estimate.status == "ok" else None


def _best_lag(estimate) -> Optional[int]:
    """The best lag of an estimate that is unknown only for want of a clear peak: a peak strong
    enough and inside the search, else None."""
    from geneface.processing import av_offset as av

    if estimate.status == "ok" or not estimate.curve or estimate.peak < av.MIN_PEAK:
        return None
    lag = int(np.argmax(estimate.curve)) - av.MAX_LAG
    return None if abs(lag) == av.MAX_LAG else lag


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
