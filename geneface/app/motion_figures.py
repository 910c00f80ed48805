"""`geneface bench generic`: the generic models' figures on held-out speakers, as one JSON object.

    geneface bench generic --data DATASETS... --encoder mel [--val-speakers A,B | --all] \\
        --syncnet syncnet/model.safetensors [--vae vae/model.safetensors] [--json out.json]

Held-out clips: those of --val-speakers, else the validation split the trainers pick by
default (a synthetic corpus's test split), or every clip with --all.

- SyncNet: accuracy on balanced pairs (positives and the three kinds of negatives, threshold
  0.5), overall and per kind; offset recovery: the audio of a random 4 s piece is shifted by
  k frames (k uniform in -5..5) and the offset search (-15..15) must find k within one frame.
- VAE: the mouth opening of generated motion against the ground truth (the synthetic
  corpus's exact `mouth_opening`, else the tracked landmarks' inner-lip gap), Pearson r per
  clip and over all frames pooled; SyncNet confidence of the generated motion with its true
  audio against the same motion with the audio delayed by 5 frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from geneface.core.records import AudioFeatures, Motion
from geneface.core.landmarks68 import mouth_opening
from geneface.training.data import Clip, load_clips, split_by_speaker
from geneface.training.syncnet_task import PairSampler, SyncNetTrainConfig, pair_metrics

if TYPE_CHECKING:
    from geneface.core.stages import AudioEncoder


def _motion(clip: Clip) -> Motion:
    return Motion(clip.denormalized(), mean=clip.mean, std=clip.std)


def shifted_pair(clip: Clip, start: int, length: int, k: int) -> tuple[Motion, AudioFeatures]:
    """Mouth frames [start, start+length) with audio delayed by k frames (audio frame t+k
    carries the sound of video frame t), cut from the clip itself (no wrap-around)."""
    lm = clip.denormalized()[start: start + length]
    a = start - k
    feats = clip.features[2 * a: 2 * (a + length)]
    return Motion(lm, mean=clip.mean, std=clip.std), AudioFeatures(feats, encoder=clip.encoder)


def syncnet_figures(judge, clips: Sequence[Clip], n_pairs: int = 2000, trials: int = 200, piece: int = 100,
                    max_shift: int = 5, search: int = 15, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sampler = PairSampler(clips, SyncNetTrainConfig())
    pairs = [sampler.draw(rng) for _ in range(n_pairs)]
    judge.net.eval()
    out = {"pairs": pair_metrics(judge.net, sampler, pairs), "n_pairs": n_pairs}
    usable = [c for c in clips if c.n_frames >= piece + 2 * max_shift]
    if not usable:
        piece = max(20, min(c.n_frames for c in clips) - 2 * max_shift)
        usable = [c for c in clips if c.n_frames >= piece + 2 * max_shift]
    errors = []
    for _ in range(trials if usable else 0):
        clip = usable[int(rng.integers(len(usable)))]
        k = int(rng.integers(-max_shift, max_shift + 1))
        start = int(rng.integers(max_shift, clip.n_frames - piece - max_shift + 1))
        motion, feats = shifted_pair(clip, start, piece, k)
        errors.append(judge.score(motion, feats, max_offset=search).offset - k)
    errors = np.abs(np.array(errors))
    out["offset"] = {"trials": int(len(errors)), "piece_frames": piece, "shifts": [-max_shift, max_shift],
                     "within_1": float(np.mean(errors <= 1)) if len(errors) else None,
                     "exact": float(np.mean(errors == 0)) if len(errors) else None}
    return out


def vae_figures(generator, judge, clips: Sequence[Clip], temperature: Optional[float] = None, seed: int = 0,
                shift: int = 5) -> dict:
    temperature = generator.config.temperature if temperature is None else temperature
    rs, pooled_pred, pooled_true, truth_kinds = [], [], [], set()
    conf_true, conf_shift = [], []
    for clip in clips:
        feats = AudioFeatures(clip.features, encoder=clip.encoder)
        motion = generator.generate(feats, temperature=temperature, seed=seed)
        pred = mouth_opening(motion.landmarks)
        if clip.mouth_opening is not None:
            truth, truth_kinds = clip.mouth_opening[: len(pred)], truth_kinds | {"ground_truth"}
        else:
            truth, truth_kinds = mouth_opening(clip.denormalized()), truth_kinds | {"tracked"}
        if np.std(pred) > 1e-9 and np.std(truth) > 1e-9:
            rs.append(float(np.corrcoef(pred, truth)[0, 1]))
        # Per-clip z-scores before pooling: clips differ in face size and units.
        pooled_pred.append((pred - pred.mean()) / (pred.std() + 1e-9))
        pooled_true.append((truth - truth.mean()) / (truth.std() + 1e-9))
        if judge is not None and motion.n_frames > shift + 20:
            t, s = true_vs_shifted(judge, motion, clip, shift)
            conf_true.append(t)
            conf_shift.append(s)
    pooled = float(np.corrcoef(np.concatenate(pooled_pred), np.concatenate(pooled_true))[0, 1]) if pooled_pred else None
    out = {"clips": len(clips), "temperature": temperature, "truth": sorted(truth_kinds),
           "mouth_r_mean": float(np.mean(rs)) if rs else None, "mouth_r_median": float(np.median(rs)) if rs else None,
           "mouth_r_pooled": pooled}
    if conf_true:
        out["sync_confidence"] = {"true_audio": float(np.mean(conf_true)), "shifted_audio": float(np.mean(conf_shift)),
                                  "shift_frames": shift,
                                  "clips_true_higher": int(np.sum(np.array(conf_true) > np.array(conf_shift))),
                                  "clips": len(conf_true)}
    return out


def evaluate(data: Sequence[Path], encoder: "AudioEncoder", val_speakers: Optional[Sequence[str]], syncnet: Path,
             vae: Optional[Path] = None, temperature: Optional[float] = None, seed: int = 0,
             every_clip: bool = False, *, registry) -> dict:
    """Figures on the held-out clips: `val_speakers`' clips, or the validation split the
    trainers pick by default (a synthetic corpus's test split), or every clip; the audio
    features are `encoder`'s (an AudioEncoder stage)."""
    # The models first: a checkpoint of the wrong kind is refused before the clips are read.
    judge = registry.load(syncnet, "syncnet", "--syncnet")
    generator = registry.load(vae, "motion_generator", "--vae") if vae is not None else None
    clips = load_clips(data, encoder)
    held_out = clips if every_clip else split_by_speaker(clips, val_speakers, seed=seed).val
    result = {"speakers": sorted({c.speaker for c in held_out}), "clips": len(held_out),
              "frames": int(sum(c.n_frames for c in held_out)), "syncnet": syncnet_figures(judge, held_out, seed=seed)}
    # The judge on the data's own motion, for comparison with the generated motion's figures.
    result["syncnet"]["data_motion"] = data_confidence(judge, held_out)
    if generator is not None:
        result["vae"] = vae_figures(generator, judge, held_out, temperature, seed)
    return result


def true_vs_shifted(judge, motion: Motion, clip: Clip, shift: int) -> tuple[float, float]:
    """Sync confidence with the true audio, and with the audio delayed by `shift` frames
    (cut, not wrapped: frame t meets the audio of frame t - shift)."""
    n = motion.n_frames
    true = judge.score(motion, AudioFeatures(clip.features[: 2 * n], encoder=clip.encoder), max_offset=0)
    later = judge.score(motion.with_landmarks(motion.landmarks[shift:]),
                        AudioFeatures(clip.features[: 2 * (n - shift)], encoder=clip.encoder), max_offset=0)
    return true.confidence, later.confidence


def data_confidence(judge, clips: Sequence[Clip], shift: int = 5) -> dict:
    pairs = [true_vs_shifted(judge, _motion(c), c, shift) for c in clips if c.n_frames > shift + 20]
    if not pairs:
        return {}
    true, shifted = zip(*pairs)
    return {"true_audio": float(np.mean(true)), "shifted_audio": float(np.mean(shifted)), "shift_frames": shift}
