"""Renderer `hashgrid_nerf`: a person-specific talking head (RAD-NeRF's design, ER-NeRF's
tri-plane by default) driven by canonical landmarks, over a 2-D torso and the video's plate.

Trained on one `geneface process` dataset (`geneface train renderer --plugin hashgrid_nerf`):
the class says how it trains (its parameter groups and losses, the contract of
geneface.training.renderer_contract), geneface.training.hashgrid_task holds its task config and
profiles, geneface.training.person_renderer_task is the generic task. The checkpoint holds everything a frame needs
besides the motion (plate, camera, regions, the training video's poses: the default camera
path), so it renders anywhere. A camera path it is handed (a spec's `input.poses`) is
honoured: poses, focal length and principal point (geneface.nerf.person). Frames stream one
at a time: memory does not grow with the motion. The model itself is geneface.nerf.talking_head.
`geneface plugins` says which compute backend it gets on this machine (`compute_backend`).
"""

from __future__ import annotations

from typing import Iterator, Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.records import Camera, Motion
from geneface.core.stages import StreamContext
from geneface.errors import PluginError
from geneface.nerf.stage import PersonNeRF
from geneface.nerf.talking_head import TalkingHeadConfig
from geneface.training.renderer_contract import Losses, TrainableRenderer


class HashGridNeRF(PersonNeRF, TrainableRenderer):
    """The head's 3-D grid (`head.space: grid`) runs on the backend `head.backend` picks for
    the device the model is on (`to_device`, and again before rendering): tinycudann on CUDA
    when it imports and `grid.lattice` is "tcnn", PyTorch otherwise. Either way the
    checkpoint holds the PyTorch table (geneface.nerf.tcnn_tables converts), so a model
    trained on one backend renders on the other."""

    name = "hashgrid_nerf"
    description = ("Landmark-driven head NeRF (tri-plane or 3-D hash grid, 2-D ambient space, occupancy marching) "
                   "over a 2-D torso and the plate")
    Config = TalkingHeadConfig
    training = "geneface.training.hashgrid_task:HashGridRecipe"

    @classmethod
    def compute_backend(cls) -> str:
        import torch

        from geneface.nerf.encodings import GridConfig, grid_backend

        cuda = torch.cuda.is_available()
        device = "cuda" if cuda else "cpu"
        # TalkingHeadConfig.precision "auto" when rendering; the trainer's AMP when training.
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else ""
        precision = f"fp16 when rendering, {amp} AMP when training" if cuda else "fp32 (mixed precision only on CUDA)"
        grid, why = grid_backend(GridConfig(lattice="tcnn"), device)
        grid_text = ("tinycudann with grid.lattice tcnn, PyTorch with the default lattice" if grid == "tcnn"
                     else f"PyTorch ({why})")
        return (f"device {device}{'' if cuda else ' (no CUDA device)'}, {precision}; "
                f"head space triplane (default): PyTorch grid_sample; grid: {grid_text}")

    def build_net(self):
        from geneface.nerf.talking_head import TalkingHeadNet

        # The field is built on the CPU, where its own seam picks PyTorch (and refuses an
        # explicit "tcnn"); `to_device` and `render` give the grid its backend on the device.
        c = self.config
        if c.head.backend == "tcnn":
            c = attrs.evolve(c, head=attrs.evolve(c.head, backend="auto"))
        return TalkingHeadNet(c)

    def to_device(self, device) -> None:
        """Move the model to `device` and give its 3-D grid the backend chosen there."""
        self.net.to(device)
        self._place_space()

    def _place_space(self) -> None:
        import torch

        from geneface.nerf.encodings import GridEncoding, TcnnGridEncoding, grid_backend
        from geneface.nerf.tcnn_tables import from_tcnn, to_tcnn

        if self.config.head.space != "grid":
            return
        head, grid, device = self.net.head, self.config.head.grid, self.net.plate.device
        try:
            backend, reason = grid_backend(grid, device, self.config.head.backend)
        except ValueError as exc:
            raise PluginError(f"renderer '{self.name}': head.backend: {exc}") from None
        if backend != head.backend:  # the same table, in the other backend's order
            old = head.space
            with torch.no_grad():
                if backend == "tcnn":
                    new = TcnnGridEncoding(grid).to(device)
                    new.encoding.params.copy_(to_tcnn(old.embeddings, grid))
                else:
                    new = GridEncoding(grid).to(device)
                    new.embeddings.copy_(from_tcnn(old.encoding.params, grid))
            head.space = new.train(old.training)
        head.backend, head.backend_reason = backend, reason

    def state_dict(self) -> dict:
        from geneface.nerf.tcnn_tables import convert_hashgrid_state, space_backend_of

        state = super().state_dict()
        # One checkpoint format: the PyTorch table, whichever backend trained it.
        return convert_hashgrid_state(state, self.config, "torch") if space_backend_of(state) == "tcnn" else state

    def load_state_dict(self, state: dict) -> None:
        from geneface.nerf.tcnn_tables import convert_hashgrid_state, space_backend_of

        have = self.net.head.backend if self.config.head.space == "grid" else ""
        if space_backend_of(state) not in ("", have):
            state = convert_hashgrid_state(state, self.config, have)
        super().load_state_dict(state)

    # -- how it trains (geneface.training.renderer_contract) -----------------------------
    @classmethod
    def model_from_data(cls, ds) -> dict:
        from geneface.training.renderer_contract import clips_from_data

        return {"size": ds.size, "n_poses": ds.n_frames, "n_latents": max(1, ds.held_out_range()[0]),
                **clips_from_data(ds)}

    def set_head_box(self, lo: list, hi: list, ds) -> None:
        import torch

        self.net.occupancy.lo.copy_(torch.tensor(lo))
        self.net.occupancy.hi.copy_(torch.tensor(hi))

    def param_groups(self, config, run_schedule):
        from geneface.core.trainable import ParamGroup

        m = self.net
        grids = [*m.head.space.parameters(), *m.head.ambient_grid.parameters(), *m.torso.grid.parameters()]
        ids = {id(p) for p in grids} | {id(m.latents.weight)}
        mlps = [p for p in m.parameters() if id(p) not in ids]
        grid_schedule = attrs.evolve(run_schedule, lr=run_schedule.lr * config.grid_lr_scale)
        # eps 1e-15 as instant-ngp: grid entries see rare, tiny gradients that a larger eps swallows.
        return [ParamGroup("grids", grids, grid_schedule, {"eps": 1e-15}),
                ParamGroup("mlps", mlps, None, {"eps": 1e-15}),
                ParamGroup("latents", [m.latents.weight], None)]

    def losses(self, batch, config) -> Losses:
        """Photometric (by phase: the head alone over the plate-filled frame and the torso alone
        outside the head in the head phase; the composite after, the mouth weighted up in the lip
        phase), the layers' opacity against the masks, the head's opacity entropy, the ambient
        coordinate's size, the latents' size."""
        import torch
        import torch.nn.functional as F

        from geneface.core.dataset import HEAD, TORSO
        from geneface.nerf.losses import ambient_regulariser, opacity_entropy, photometric, psnr
        from geneface.nerf.volume import composite

        c, m, phase, slot = config, self.net, batch.phase, batch.slot
        cond = m.condition(batch.landmarks)
        latent = m.latents(batch.latent)
        head, ambient = m.render_head(batch.rays, cond[slot], latent[slot], perturb=True)
        target, label = batch.target, batch.label
        plate = m.plate_colours(batch.flat, batch.ray_clip)
        is_head = (label == HEAD).float()
        t_rgb, t_alpha = m.torso(m.pixel_coords(batch.pixels), m.pose(batch.c2w)[slot])
        not_head = 1.0 - is_head
        if phase == "head":
            behind = torch.where(is_head[:, None] > 0, plate, target)
            pred = composite([(head.rgb, head.opacity)], behind)
            torso_pred = composite([(t_rgb * t_alpha[:, None], t_alpha)], plate)
            photo = photometric(pred, target) + photometric(torso_pred, target, not_head)
        else:
            pred = composite([(head.rgb, head.opacity), (t_rgb * t_alpha[:, None], t_alpha)], plate)
            weights = 1.0 + (c.lip_weight - 1.0) * batch.lip.float() if phase == "lip" else None
            photo = photometric(pred, target, weights)
        eps = 1e-4
        head_bce = F.binary_cross_entropy(head.opacity.clamp(eps, 1 - eps), is_head)
        torso_bce = (F.binary_cross_entropy(t_alpha.clamp(eps, 1 - eps), (label == TORSO).float(), reduction="none")
                     * not_head).sum() / not_head.sum().clamp(min=1.0)
        terms = {"photometric": photo, "mask": c.w_mask * (head_bce + torso_bce),
                 "entropy": c.w_entropy * opacity_entropy(head.opacity)}
        if len(ambient):
            terms["ambient"] = c.w_ambient * ambient_regulariser(ambient)
        if latent.numel():  # latent_dim 0: no codes (the mean of nothing is nan)
            terms["latent"] = c.w_latent * latent.square().mean()
        return Losses(terms, {"psnr": float(psnr(pred.detach(), target)),
                              "samples_per_ray": len(ambient) / max(1, len(batch))})

    def after_train_step(self, step: int, landmarks) -> None:
        import torch

        m = self.net
        with torch.no_grad():
            # The training frames' condition features, kept while `landmarks` and the statistics
            # stay the same (every step of a run): per step only the noise is drawn, for every
            # frame as it always was (the random stream the rest of training follows), and the
            # conditions are made only when the grid updates. A person of many minutes has tens
            # of thousands of training frames: conditioning them all each step cost 120 ms at 34k.
            key = (landmarks.data_ptr(), tuple(landmarks.shape), m.condition.mean._version, m.condition.std._version,
                   str(m.plate.device))
            if getattr(self, "_features_key", None) != key:
                self._features = m.condition.features(landmarks.to(m.plate.device))
                self._features_key = key
            z = self._features
            noise = m.condition.noise_like(z)
        conds: list = []

        def density(x: torch.Tensor) -> torch.Tensor:
            # Occupancy must cover every expression: each point sees a random training frame's.
            if not conds:
                with torch.no_grad():
                    conds.append(m.condition.from_features(z, noise))
            pick = torch.randint(len(conds[0]), (len(x),), device=x.device)
            return m.density(x, conds[0][pick])

        m.occupancy.step(step, density)

    def validation_metrics(self) -> dict:
        return {"occupied": self.net.occupancy.occupied_fraction}

    def render(self, motion: Motion, camera: Optional[Camera] = None) -> Iterator[np.ndarray]:
        camera = self.prepare(motion, camera)
        self._place_space()  # the model may have been moved with a plain `net.to`
        return self.frames((motion.landmarks[i] for i in range(motion.n_frames)), camera)

    def stream_context(self) -> StreamContext:
        # Frame t is drawn from landmarks t and pose t alone, with nothing random and no state
        # carried between frames (the footprint's cache depends on the occupancy grid only).
        return StreamContext(0, 0)

    def render_part(self, motion: Motion, camera: Optional[Camera], start: int, stop: int) -> Iterator[np.ndarray]:
        """Frames start..stop-1 of `render(motion, camera)`, drawing only those."""
        camera = self.prepare(motion, camera)
        self._place_space()
        return self.frames((motion.landmarks[i] for i in range(start, stop)),
                           attrs.evolve(camera, c2w=camera.c2w[start:stop]))


@hookimpl
def register_renderers(register):
    register(HashGridNeRF)
