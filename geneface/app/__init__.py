"""The application layer: one module per command engine, between the typer flags of
`geneface/cli/` and the library below (core, nerf, metrics, training, ...). The CLI above it
makes the plugin registry, once per command; this layer is handed it and hands it down as an
argument (a corpus worker process, `process.process_clip`, makes its own).

Modules: `run` (`geneface run`: a spec's stages built by the registry, the head path resolved
once, the output written), `train` (`geneface train`: any trainable plugin through its recipe
and the shared Trainer), `eval` (`geneface eval`: lip sync and reference scores; its re-tracking
in `eval_tracking`, its JSON and table in `eval_report`), `bench_renderers` (`geneface bench
renderers`; its flags checked in `bench_renderers_choice`, its report written by
`bench_renderers_report`; `bench_renderers_people`: several persons and the summary against a baseline), `bench_adapters` (`geneface bench adapters`), `bench_motion`
(`geneface bench motion`; its models and flags checked in `bench_motion_choice`, its clips
read by `bench_motion_clips`, its report written by `bench_motion_report`), `motion_figures`
(`geneface bench generic`: the generic SyncNet and VAE on held-out speakers), `demo`
(`geneface demo`), `process` (`geneface process`, `process-corpus`, `dataset av-offset`, and
the per-clip worker), `components` (a face tracker or audio encoder picked by name),
`stream` (the `Streamer`: a spec's stages on audio as it arrives, frames out with bounded
look-ahead, the latency record) and `stream_run` (`geneface stream`: audio from a file or
stdin, frames to an mp4 and/or raw RGB24, the report).

The engines of `bench adapters` and `bench motion` each have one entry for the whole command
(`run_bench_adapters`, `run_bench_motion`: the registry handed in, the report written).
"""
