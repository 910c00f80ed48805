"""Fingerprints of tiny training runs: the same seed and config must give the same
metrics.csv and bit-identical weights, before and after a change to the training code.

Five plugins are trained at tiny sizes through `geneface train` (in this process, on one torch
thread): hashgrid_nerf and vanilla_nerf on the synthetic subject (2 s at 64 px), syncnet, vae
and adversarial_postnet on the toy corpus (tests/support/toy.py). For each run it records the
sha256 of metrics.csv (it holds step, phase, name, value and no wall-clock column, so the whole
file is hashed), of every tensor of model.safetensors (name, dtype, shape and bytes) and of
last.safetensors's tensors as one digest; for the renderers also of a frame drawn from
model.safetensors. Beside them: `torch.backends.cpu.get_cpu_capability()` and torch's
version, since float results can differ across ISAs (tests/test_training_fingerprints.py skips
on another capability).

    python tests/support/fingerprints.py              # rewrite tests/training_fingerprints.json
    python tests/support/fingerprints.py --keep DIR   # ... and keep the run folders in DIR
    python tests/support/fingerprints.py --check-old DIR  # load DIR's checkpoints (an older
                      # version's runs), render with this code: the frames' digests must match

Run it from a checkout with the package importable (PYTHONPATH=CHECKOUT, tests/ on the path).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FINGERPRINTS = HERE.parent / "training_fingerprints.json"
RENDERERS = ("hashgrid_nerf", "vanilla_nerf")
PLUGINS = (*RENDERERS, "syncnet", "vae", "adversarial_postnet")

# Every setting is on the command line or in these files: the runs depend on them and the code only.
HASHGRID_YAML = {"train": {"threads": 1, "keep_best": 2},
                 "model": {"occupancy": {"resolution": 16, "max_samples": 8}},
                 "task": {"val_frames": 1, "val_images": 1, "frames_per_batch": 4}}
VANILLA_YAML = {"train": {"threads": 1, "keep_best": 2},
                "model": {"condition": {"dim": 8, "hidden": 16},
                          "head": {"hidden": 16, "layers": 3, "skip": 1, "colour_hidden": 16, "coarse_samples": 4,
                                   "fine_samples": 4},
                          "torso": {"hidden": 16, "layers": 3, "skip": 1, "colour_hidden": 16, "coarse_samples": 4,
                                    "fine_samples": 4}},
                "task": {"val_frames": 1, "val_images": 1, "head_stage": 0.5, "frames_per_batch": 2}}
SYNCNET_YAML = {"train": {"threads": 1, "batch_size": 16, "lr": 0.001, "val_every": 10, "ckpt_every": 10,
                          "log_every": 5, "keep_best": 1},
                "model": {"channels": [8, 16, 16], "embed": 16},
                "task": {"val_pairs": 40, "val_offset_clips": 2}}
VAE_YAML = {"train": {"threads": 1, "batch_size": 4, "lr": 0.002, "warmup": 3, "decay_steps": 50, "val_every": 10,
                      "ckpt_every": 10, "log_every": 5, "keep_best": 1},
            "model": {"hidden": 16, "enc_layers": 2, "dec_layers": 1, "flow_layers": 1, "cond_hidden": 16,
                      "window": 32},
            # the sync loss switches on after the first validation: both kinds of step are covered
            "task": {"segment": 16, "val_clips": 2, "sync_threshold": 100.0, "sync_windows": 2}}
POSTNET_YAML = {"train": {"threads": 1},
                "model": {"widths": [16, 16], "kernel": 3},
                "task": {"segment": 16, "val_corpus_clips": 2}}


def tensor_digest(name: str, tensor) -> str:
    import torch

    t = tensor.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def checkpoint_digests(path: Path) -> dict:
    """{tensor name: digest} of a checkpoint's tensors (its metadata holds paths: left out)."""
    from geneface.core.checkpoint import read_checkpoint

    state = read_checkpoint(path).state
    return {k: tensor_digest(k, state[k]) for k in sorted(state)}


def combined(digests: dict) -> str:
    return hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(digests.items())).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def render_digest(checkpoint: Path, dataset: Path, frames=(5, 47)) -> str:
    """A training frame and a held-out frame drawn by the checkpoint from their own landmarks and
    poses (uint8, as `geneface run` writes them)."""
    import numpy as np
    import torch

    from geneface.core.dataset import Dataset
    from geneface.nerf.stage import to_uint8
    from geneface.registry import get_registry

    stage = get_registry().load(checkpoint, "renderer", "fingerprint")
    ds = Dataset(dataset)
    landmarks, c2w = ds.landmarks_canonical(), ds.camera().c2w
    h = hashlib.sha256()
    window = getattr(getattr(stage.config, "condition", None), "window", None) if stage.name == "vanilla_nerf" else None
    with torch.no_grad():
        for f in frames:
            if window:
                from geneface.nerf.fields.vanilla_head import window_indices

                lm = landmarks[window_indices(ds.n_frames, f, window)]
            else:
                lm = landmarks[f]
            frame = to_uint8(stage.net.render_frame(torch.from_numpy(np.ascontiguousarray(lm)),
                                                    torch.from_numpy(c2w[f])))
            h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()


def dataset_digest(dataset: Path) -> str:
    """What the renderers train on (frames, masks, landmarks, camera): a differing input is named
    as such instead of passing for a training change."""
    import numpy as np

    from geneface.core.dataset import Dataset

    ds = Dataset(dataset)
    h = hashlib.sha256()
    for arr in (np.stack([ds.frame(i) for i in range(ds.n_frames)]), np.stack([ds.mask(i) for i in range(ds.n_frames)]),
                ds.landmarks_canonical(), ds.landmarks_image(), ds.camera().c2w, ds.background()):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def _train(args: list) -> None:
    from geneface.cli import main

    code = main(["train", *map(str, args), "--seed", "3", "--quiet"])
    if code != 0:
        raise RuntimeError(f"geneface train {' '.join(map(str, args))} failed with exit code {code}")


def train_runs(root: Path, subject: Path) -> dict:
    """Train the five plugins into `root`/NAME (the synthetic subject dataset at `subject`, made
    when missing); returns {NAME: run folder} and the datasets used."""
    from support.subject import subject_dataset
    from support.toy import register_toy_encoder, toy_datasets, toy_person

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ds = subject_dataset(subject)
    runs = {name: root / name for name in PLUGINS}
    _train(["renderer", "--plugin", "hashgrid_nerf", "--data", ds, "--out", runs["hashgrid_nerf"], "--steps", 20,
            "--batch-size", 256, "--lr", "5e-3", "--val-every", 10, "--ckpt-every", 10, "--log-every", 5,
            "--config", _yaml(root / "hashgrid.yaml", HASHGRID_YAML)])
    _train(["renderer", "--plugin", "vanilla_nerf", "--data", ds, "--out", runs["vanilla_nerf"], "--steps", 6,
            "--batch-size", 64, "--lr", "5e-3", "--val-every", 3, "--ckpt-every", 3, "--log-every", 2,
            "--config", _yaml(root / "vanilla.yaml", VANILLA_YAML)])
    data = root / "toy_data"
    toy_datasets(data, n_speakers=3, clips_per_speaker=2, n_frames=90)
    person = toy_person(root / "toy_person", n_frames=110)
    register_toy_encoder()
    _train(["syncnet", "--data", data, "--out", runs["syncnet"], "--steps", 20, "--encoder", "toy",
            "--val-speakers", "spk1", "--config", _yaml(root / "syncnet.yaml", SYNCNET_YAML)])
    syncnet = runs["syncnet"] / "model.safetensors"
    _train(["audio2motion", "--data", data, "--syncnet", syncnet, "--out", runs["vae"], "--steps", 20,
            "--encoder", "toy", "--val-speakers", "spk1", "--config", _yaml(root / "vae.yaml", VAE_YAML)])
    _train(["domain_adapter", "--plugin", "adversarial_postnet", "--person", person, "--corpus", data,
            "--motion-generator", runs["vae"] / "model.safetensors", "--syncnet", syncnet, "--out",
            runs["adversarial_postnet"], "--steps", 20, "--val-every", 5, "--ckpt-every", 10, "--log-every", 5,
            "--lr", "0.001", "--config", _yaml(root / "postnet.yaml", POSTNET_YAML)])
    return runs


def fingerprints(root: Path, subject: Path) -> dict:
    """Train the five runs under `root` and fingerprint them (on one torch thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = train_runs(root, subject)
        ds = Path(subject) / "ds"
        out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
               "subject_dataset": dataset_digest(ds), "runs": {}}
        for name, run in runs.items():
            model = checkpoint_digests(run / "model.safetensors")
            entry = {"metrics_csv": file_digest(run / "metrics.csv"), "model": model,
                     "last": combined(checkpoint_digests(run / "last.safetensors"))}
            if name in RENDERERS:
                entry["render"] = render_digest(run / "model.safetensors", ds)
            out["runs"][name] = entry
        return out
    finally:
        torch.set_num_threads(threads)


def check_old(folder: Path, subject: Path, recorded: dict) -> list[str]:
    """Render with this code from the renderers' checkpoints kept in `folder` (an older
    version's runs) and compare with the recorded frames' digests; the problems found."""
    problems = []
    for name in RENDERERS:
        got = render_digest(Path(folder) / name / "model.safetensors", Path(subject) / "ds")
        if got != recorded["runs"][name]["render"]:
            problems.append(f"{name}: the old checkpoint renders different frames")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--keep", type=Path, default=None, help="copy the run folders and the subject here")
    parser.add_argument("--check-old", type=Path, default=None, help="render from these runs' checkpoints")
    parser.add_argument("--output", type=Path, default=FINGERPRINTS)
    args = parser.parse_args(argv)
    import os
    import tempfile

    os.environ.setdefault("GENEFACE_PLUGINS", "geneface-landmark-viz")
    work = args.work or Path(tempfile.mkdtemp(prefix="geneface-fingerprints-"))
    subject = work / "subject_2s"
    if args.check_old is not None:
        from support.subject import subject_dataset

        if not (args.check_old / "subject_2s" / "ds").is_dir():
            subject_dataset(subject)
        else:
            subject = args.check_old / "subject_2s"
        problems = check_old(args.check_old, subject, json.loads(args.output.read_text()))
        print("\n".join(problems) or "old checkpoints render identical frames")
        return 1 if problems else 0
    result = fingerprints(work / "runs", subject)
    args.output.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        for name in PLUGINS:
            shutil.copytree(work / "runs" / name, args.keep / name, dirs_exist_ok=True)
        shutil.copytree(subject, args.keep / "subject_2s", dirs_exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # `support` importable
    sys.exit(main())
