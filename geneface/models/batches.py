"""The motion models' training batches as typed records: what a task draws and what the model's
`losses` reads (geneface.core.trainable), in place of a dict of tensors between the two.

Landmarks are normalised and flattened (B x T x 204), features are at twice the video rate
(B x 2T x D); `sync_starts` (B x K) are the first video frames of the windows the sync loss
scores (geneface.models.syncnet.windows_sync_prob).
"""

from __future__ import annotations

from typing import Union

import attrs
import torch


class _Tensors:
    def to(self, device: Union[str, torch.device]):
        """The record with its tensors on `device` (the trainer moves a batch this way)."""
        return attrs.evolve(self, **{f.name: getattr(self, f.name).to(device, non_blocking=True)
                                     for f in attrs.fields(type(self))})


@attrs.frozen(eq=False)
class SyncPairs(_Tensors):
    """SyncNet pairs: `mouth` windows (B x 5 x 60), `audio` windows (B x 10 x D), `label`
    (B, 1.0: in sync)."""

    mouth: torch.Tensor
    audio: torch.Tensor
    label: torch.Tensor


@attrs.frozen(eq=False)
class MotionWindows(_Tensors):
    """The VAE's training sequences: `motion` (B x T x 204), their `audio` (B x 2T x D) and the
    windows of each the sync loss scores (`sync_starts`)."""

    motion: torch.Tensor
    audio: torch.Tensor
    sync_starts: torch.Tensor


@attrs.frozen(eq=False)
class PostnetBatch(_Tensors):
    """The postnet's: the frozen generator's output for corpus audio (`corpus`, B x T x 204)
    with its features (`corpus_features`) and the windows the sync loss scores
    (`sync_starts`); for the person's own audio (`person`) with the person's landmarks of
    the same frames (`person_true`), all in the person's normalisation."""

    corpus: torch.Tensor
    corpus_features: torch.Tensor
    person: torch.Tensor
    person_true: torch.Tensor
    sync_starts: torch.Tensor
