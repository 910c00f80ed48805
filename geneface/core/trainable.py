"""What a trainable model says about how it trains, for renderers and motion models alike.

It lives in core, beside the stages, so that a stage that declares how it trains loads no
training code when it only runs (an adapter's `adapt()`, a renderer drawing frames).

A stage class whose `net` is trained inherits `TrainableNet` beside its stage base and
declares what is its own; its task (geneface.training.*_task) keeps the data, the schedule,
validation and export, and calls only these:

- `param_groups(config, run_schedule)`: its parameters in named groups (`ParamGroup`: a
  schedule and optimiser options each); default: one group "all" at the run's schedule;
- `losses(batch, config, ...)`: the loss terms of one typed batch record (never a loose dict
  of tensors) as a `Losses` record, each term already weighted (the loss is their sum, in
  their order), with the metrics logged beside the loss. `config` is the task config (the
  `--config` file's `task:` section: the weights live there). What a model is trained
  against besides its batch comes as keywords: `net` (what to run the forward pass through:
  the trainer's DDP wrapper of `self.net`), `judge` (a frozen SyncNet).

`TrainableGAN` extends it for a generator trained against a discriminator that only training
needs (two optimisers, each with its own losses).

Who follows it: the renderers trained ray by ray (geneface.training.renderer_contract extends
it; geneface/plugins/hashgrid_nerf.py, vanilla_nerf.py), `syncnet` and `vae`
(geneface/plugins/syncnet.py, vae.py) and, as a GAN, `adversarial_postnet`
(geneface/plugins/adversarial_postnet.py). docs/training.md, "How a model trains".
"""

from __future__ import annotations

from typing import Optional

import attrs
import torch

# "LRSchedule" below is geneface.training.config's, named only: core sits below training.


@attrs.define(eq=False)
class ParamGroup:
    """Parameters that share a learning-rate schedule (None: the run's schedule).

    `options` go to the optimiser with the group (e.g. {"weight_decay": 1e-6}).
    """

    name: str
    params: list = attrs.field(converter=list)
    schedule: Optional["LRSchedule"] = None
    options: dict = attrs.field(factory=dict)


@attrs.frozen(eq=False)
class Losses:
    """A step's loss terms, each already weighted (the loss is their sum, in this order), and
    the metrics logged beside the loss."""

    terms: dict  # name -> scalar tensor
    metrics: dict = attrs.field(factory=dict)  # name -> float

    def total(self) -> torch.Tensor:
        values = iter(self.terms.values())
        total = next(values)
        for value in values:
            total = total + value
        return total


class TrainableNet:
    """Mixed into a stage whose `net` (a torch module) is what training optimises."""

    def param_groups(self, config, run_schedule: "LRSchedule") -> list[ParamGroup]:
        """The model's parameters in named groups; default: one group at the run's schedule."""
        return [ParamGroup("all", self.net.parameters())]

    def losses(self, batch, config) -> Losses:
        """The loss terms of one batch (the model's typed batch record)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it is trained (losses)")


class TrainableGAN(TrainableNet):
    """A generator (in `net`, whose `param_groups` it declares) trained against a discriminator
    that only training needs. One step: `generated(batch)` once, then the discriminator's
    optimiser steps on `discriminator_losses`, then the generator's on `generator_losses`."""

    def discriminator(self) -> torch.nn.Module:
        """A new discriminator (trained and saved for resume beside `net`, never exported)."""
        raise NotImplementedError(f"{type(self).__name__} does not say what its discriminator is")

    def discriminator_groups(self, disc: torch.nn.Module, config, run_schedule: "LRSchedule") -> list[ParamGroup]:
        return [ParamGroup("disc", disc.parameters())]

    def generated(self, batch) -> torch.Tensor:
        """The generator's output for the batch, shared by both steps."""
        raise NotImplementedError(f"{type(self).__name__} does not say what it generates")

    def discriminator_losses(self, disc: torch.nn.Module, batch, fake: torch.Tensor, config) -> Losses:
        raise NotImplementedError(f"{type(self).__name__} does not say how its discriminator is trained")

    def generator_losses(self, disc: torch.nn.Module, batch, fake: torch.Tensor, config, **against) -> Losses:
        raise NotImplementedError(f"{type(self).__name__} does not say how its generator is trained")

    def losses(self, batch, config) -> Losses:
        raise NotImplementedError(f"{type(self).__name__} is a GAN: its losses are discriminator_losses and "
                                  "generator_losses")
