"""A mixin for stages whose weights are one torch module, `self.net`.

Such a stage (the `vae` motion generator, the `syncnet` judge, ...) saves and loads its
module's state dict as its checkpoint, remembers from the checkpoint's metadata which audio
encoder it was trained with, and expects features as wide as `config.audio_width`. Put it
first in the bases: `class MyGenerator(NetStage, MotionGenerator)`.
"""

from __future__ import annotations


class NetStage:
    encoder: str = ""  # the audio encoder the weights were trained with ("" = unknown)

    @property
    def expected_width(self) -> int:
        return self.config.audio_width

    def state_dict(self) -> dict:
        return dict(self.net.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state)
        self.net.eval()

    def load_checkpoint(self, ckpt) -> None:
        self.load_state_dict(ckpt.state)
        self.encoder = ckpt.meta.get("encoder", "")
