"""The ground floor: records, stages, kinds and formats on disk, shared by every other layer.

Modules: `records` (the typed records between stages), `stages` (the abstract stages and
`RunContext`), `kinds` (the table of kinds), `net_stage` (mixins for stages with weights),
`spec` (pipeline specs and `validate_spec`), `config` (plain data <-> attrs configs),
`checkpoint` (one safetensors file per component), `dataset` (the dataset folder format),
`person` (a person of several clips: its folder, the held-out clips, `PersonDataset`, subsets),
`person_length` (a person's usable minutes, and the one wording of what more video buys),
`camera_io` (pose files, fitting a head path to a length), `motion_io` (landmark files),
`features` (feature normalisation), `landmarks68` (the 68-point layout and mouth opening),
`media` (PyAV audio and video I/O), `paste_back` (crops back into the source video),
`arrays` (padding, runs, arrays on disk), `corpus_index` (the
index of a processed corpus that training reads), `atomic` (write then rename), `lock` (one writer
per output), `native_log` (native libraries' log lines kept off stderr), `trainable` (what a
trainable model declares: parameter groups, losses), `outputs` (the check before any output is written), `prefetch` (an iterator run
ahead on a thread), `progress` (progress bars), `text` ("did you mean ...?"), `yaml_safe` (every YAML file a
user hands us, read with aliases bounded), `measure`
(peak memory of a block, the time of each item), `image_grid` (frames side by side, PNG files).
"""
