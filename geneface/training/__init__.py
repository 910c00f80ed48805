"""Training machinery shared by every trainable stage (docs/training.md).

Modules: `config` (`TrainConfig`, `LRSchedule`: a run's loop settings), `task` (`TrainTask`),
`recipe` (how a plugin trains: `Recipe`, its flags, `TrainInputs` with the registry handed
down), `trainer` (the loop: resume, validation, keep-best-k, metrics, Ctrl-C, mixed
precision, DDP under torchrun), `state` (resume state without pickle), `metrics` (CSV,
TensorBoard, progress), `distributed`, `clips` (`Clip`, one training clip in memory), `data` (clips from datasets and synthetic corpora,
split by speaker; sampling), `lazy_clips` (an indexed corpus's clips, read window by window),
`speaker_data` (the audio-to-motion recipes' data flags), `person_data`
(one target person, the held-out last 1/11 split off; a person of several clips read clip by
clip), `person_offset` (which audio a person's frames pair with: clips of unknown audio-to-video
offset estimated together), `syncnet_task`, `vae_task`,
`postnet_task`, `checkpoint_choice` (a GAN's checkpoint chosen or averaged from its
curves), `projection_fit` (`landmark_projection` in closed form), `renderer_contract` (what a
renderer trained ray by ray declares besides `geneface.core.trainable`), `person_renderer_task` (the
generic one-person renderer task and recipe), `frame_store` (its frames and masks read per
batch, a small cache; where a head or person was seen, in one streaming pass), `hashgrid_task` and `vanilla_task` (the two
NeRFs' task configs and profiles).
"""
