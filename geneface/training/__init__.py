"""Training machinery shared by every trainable stage (docs/training.md).

- `config.TrainConfig`: the loop settings of a run (steps, batch, schedule, device, cadence);
- `trainer.Trainer` + `trainer.TrainTask`: the loop (resume, validation, keep-best-k,
  metrics, Ctrl-C, mixed precision, DDP under torchrun);
- `data`: clips from datasets and synthetic corpora, split by speaker;
- `syncnet_task`, `vae_task`: the two audio-to-motion trainers; `evaluate`: their figures.
"""
