"""DomainAdapter `adversarial_postnet`: GeneFace's person-specific postnet.

Generic motion is re-expressed in the person's face (`rebase`), then a residual 1-D CNN adds
a learned correction so it moves like the person (their mouth amplitude, asymmetries and
range). Trained adversarially against the person's own landmarks with
`geneface train domain_adapter --plugin adversarial_postnet` (geneface.training.postnet_task:
data, schedule, validation, the checkpoint's choice); the class says how it trains, as a GAN
(geneface.core.trainable.TrainableGAN: its discriminator, both parameter groups, both
steps' losses over a `PostnetBatch`). Long motion runs in windows with enough context that the
result equals one pass over the whole sequence (bit for bit: `length_invariant_convs`), and
it streams exactly with the generator's reach as context each side.
"""

from __future__ import annotations

from typing import Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.net_stage import TorchStage
from geneface.core.records import N_LANDMARKS, Motion
from geneface.core.stages import DomainAdapter, StreamContext
from geneface.errors import StageMismatchError, UsageError
from geneface.core.trainable import Losses, TrainableGAN

_pos = attrs.validators.gt(0)


def _widths(_inst, _attr, value):
    if len(value) < 1 or any(int(v) <= 0 for v in value):
        raise ValueError(f"widths must be positive, got {value}")


@attrs.define
class PostnetConfig:
    widths: tuple = attrs.field(default=(128, 256, 128), converter=tuple, validator=_widths)
    kernel: int = attrs.field(default=5, validator=_pos)
    window: int = attrs.field(default=2048, validator=_pos)  # frames per inference window


class AdversarialPostnet(TorchStage, DomainAdapter, TrainableGAN):
    name = "adversarial_postnet"
    description = "GeneFace's person-specific postnet: residual 1-D CNN trained adversarially on the person's landmarks"
    Config = PostnetConfig
    training = "geneface.training.postnet_task:PostnetRecipe"
    needs_checkpoint = True

    def build_net(self):
        from geneface.models.postnet import PersonPostnet

        return PersonPostnet(self.config.widths, self.config.kernel)

    # -- how it trains (geneface.core.trainable.TrainableGAN) ---------------------------
    def set_person(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Keep the person's landmark statistics (68 x 3 each): what it works in and returns."""
        import torch

        self.net.person_mean.copy_(torch.from_numpy(mean))
        self.net.person_std.copy_(torch.from_numpy(std))

    def discriminator(self):
        from geneface.models.postnet import FrameDiscriminator

        return FrameDiscriminator()

    def param_groups(self, config, run_schedule):
        from geneface.core.trainable import ParamGroup

        return [ParamGroup("gen", self.net.generator.parameters())]

    def generated(self, batch):
        return self.net.generator(batch.corpus)

    def discriminator_losses(self, disc, batch, fake, config) -> Losses:
        """Least squares: the person's real frames towards 1, generated ones towards 0."""
        real = batch.person_true.reshape(-1, fake.shape[-1])
        d_real, d_fake = disc(real), disc(fake.detach().reshape(real.shape[0], -1))
        d_loss = 0.5 * (((d_real - 1) ** 2).mean() + (d_fake ** 2).mean())
        return Losses({"least_squares": d_loss}, {"d_loss": d_loss.item(), "d_real": d_real.mean().item(),
                                                  "d_fake": d_fake.mean().item()})

    def generator_losses(self, disc, batch, fake, config, judge=None) -> Losses:
        """METHOD.md: adversarial (least squares, towards 1) and sync (through `judge`, the frozen
        SyncNet) on the corpus motion, MSE against the person's landmarks on their own; weighted
        by the task config."""
        from geneface.models.syncnet import sync_loss, windows_sync_prob

        c = config
        adv = ((disc(fake.reshape(-1, fake.shape[-1])) - 1) ** 2).mean()
        sync = sync_loss(windows_sync_prob(judge, fake, batch.corpus_features, batch.sync_starts))
        mse = ((self.net.generator(batch.person) - batch.person_true) ** 2).mean()
        return Losses({"adv": c.w_adv * adv, "sync": c.w_sync * sync, "mse": c.w_mse * mse},
                      {"adv": adv.item(), "sync": sync.item(), "mse": mse.item()})

    @property
    def person_stats(self) -> tuple[np.ndarray, np.ndarray]:
        return self.net.person_mean.cpu().numpy(), self.net.person_std.cpu().numpy()

    def stream_context(self) -> StreamContext:
        reach = self.net.generator.reach
        return StreamContext(reach, reach)

    def adapt(self, motion: Motion) -> Motion:
        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"domain_adapter '{self.name}': {problem}")
        if not self.net.fitted:
            raise UsageError(f"domain_adapter '{self.name}' has no trained weights: train it with `geneface train "
                             "domain_adapter --plugin adversarial_postnet --person DATASET ...` and give the spec its "
                             "checkpoint")
        from geneface.core.records import rebase

        mean, std = self.person_stats
        z = self.correct(rebase(motion, mean, std))
        return Motion(z.reshape(-1, N_LANDMARKS, 3) * std + mean, motion.fps, mean, std)

    def correct(self, z: np.ndarray, window: Optional[int] = None) -> np.ndarray:
        """T x 204 normalised -> T x 204, window by window with the net's reach as context."""
        import torch

        from geneface.models.blocks import length_invariant_convs

        gen = self.net.generator
        window = window or self.config.window
        n, reach = len(z), gen.reach
        device = self.net.person_mean.device
        out = np.empty_like(z)
        self.net.eval()
        with torch.no_grad(), length_invariant_convs():  # a window equals the whole, bit for bit
            for start in range(0, n, window):
                end = min(start + window, n)
                a, b = max(0, start - reach), min(n, end + reach)
                piece = gen(torch.from_numpy(z[None, a:b]).to(device))[0]
                out[start:end] = piece[start - a: end - a].cpu().numpy()
        return out


@hookimpl
def register_domain_adapters(register):
    register(AdversarialPostnet)
