"""Mixins for stages with trained weights; put them first in the bases.

- `TorchStage`: the weights are one torch module, `self.net` (made by the subclass's
  `build_net()`, in eval mode until a trainer says otherwise); its state dict is the
  checkpoint; `to_device` moves it. Any stage with a torch module uses it (a renderer, a
  domain adapter, ...): `class MyRenderer(TorchStage, Renderer)`.
- `AudioConditioned`: the stage reads audio features, so it remembers from the checkpoint's
  metadata which audio encoder the weights were trained with (`encoder`) and expects
  features as wide as `config.audio_width`:
  `class MyGenerator(AudioConditioned, TorchStage, MotionGenerator)`.
- `check_state_keys`: for a stage whose weights are plain arrays, the state dict holds
  exactly its keys.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence


class TorchStage:
    def __init__(self, config=None):
        super().__init__(config)
        self.net = self.build_net()
        self.net.eval()

    def build_net(self):
        """The stage's torch module, from `self.config`."""
        raise NotImplementedError(f"{type(self).__name__} must define build_net()")

    def to_device(self, device) -> None:
        """Move the module to `device` (training and benchmarks call this); a stage whose
        kernels depend on the device (a fused CUDA encoding) overrides it to choose them."""
        self.net.to(device)

    def state_dict(self) -> dict:
        return dict(self.net.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state)
        self.net.eval()


class AudioConditioned:
    encoder: str = ""  # the audio encoder the weights were trained with ("" = unknown)

    @property
    def expected_width(self) -> Optional[int]:
        return self.config.audio_width

    def load_checkpoint(self, ckpt) -> None:
        super().load_checkpoint(ckpt)
        self.encoder = ckpt.meta.get("encoder", "")


def check_state_keys(state: Mapping, keys: Sequence[str]) -> None:
    """A state dict (of a stage without a torch module) holds exactly `keys`; otherwise a
    ValueError naming what is missing or unexpected (the loader turns it into one line)."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"missing tensor(s) {', '.join(missing)} (expected {', '.join(keys)})")
    extra = sorted(set(state) - set(keys))
    if extra:
        raise ValueError(f"unexpected tensor(s) {', '.join(extra)}")
