"""Speed of the space encodings (3-D grid vs tri-plane), each under the same small MLP; prints one JSON line.

    python benchmarks/bench_encodings.py [--device cuda] [--batch 32768] [--repeat 5] [--threads N] [--only grid3d,triplane6]

Per encoding, on one batch of random points in the box: a training step (forward, MSE to a
random target, backward, Adam step on the encoding and the MLP) and inference (forward
under no_grad), each the median of `--repeat` timed runs after one warm-up, as samples per
second. The MLP is 3 layers x 64 to a 16-d output (a density head's size). This is how the
default space encoding is chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def encodings():
    from geneface.nerf.encodings import GridConfig, TriPlaneConfig

    return {
        # RAD-NeRF's: 16 levels x 2, 16 to 2048, 2^16 rows (the 3 coarsest levels dense).
        "grid3d": GridConfig(levels=16, features=2, base_resolution=16, finest_resolution=2048, log2_hashmap_size=16),
        # Six dense levels 64 to 512 per plane, planes concatenated.
        "triplane6": TriPlaneConfig(levels=6, features=2, base_resolution=64, finest_resolution=512),
        # ER-NeRF's size: 12 levels 64 to 512, one feature each.
        "triplane12": TriPlaneConfig(levels=12, features=1, base_resolution=64, finest_resolution=512),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32768)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after one warm-up; medians are reported")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--only", help="comma-separated names among " + ",".join(encodings()))
    args = parser.parse_args()

    import attrs
    import torch

    from geneface.nerf.encodings import make_grid_encoding
    from geneface.nerf.mlp import MLP, MLPConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> list[float]:
        fn()  # warm-up: first-call allocations, kernel selection
        times = []
        for _ in range(args.repeat):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return times

    chosen = encodings()
    if args.only:
        chosen = {k: chosen[k] for k in args.only.split(",")}
    results = {}
    for name, config in chosen.items():
        torch.manual_seed(0)
        enc, backend, _ = make_grid_encoding(config, device)  # tinycudann where it can be used
        mlp = MLP(enc.out_dim, 16, MLPConfig(hidden=64, layers=3)).to(device)
        opt = torch.optim.Adam([*enc.parameters(), *mlp.parameters()], lr=1e-2)
        x = torch.rand(args.batch, 3, device=device) * 2 - 1
        target = torch.rand(args.batch, 16, device=device)

        def train_step():
            loss = (mlp(enc(x)) - target).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def infer():
            with torch.no_grad():
                mlp(enc(x))

        train, inference = timed(train_step), timed(infer)
        results[name] = {
            "config": attrs.asdict(config),
            "backend": backend,
            "out_dim": enc.out_dim,
            "params": sum(p.numel() for p in enc.parameters()),
            "train_samples_per_s": round(args.batch / statistics.median(train)),
            "infer_samples_per_s": round(args.batch / statistics.median(inference)),
            "train_runs_s": [round(t, 4) for t in train],
            "infer_runs_s": [round(t, 4) for t in inference],
        }
    print(json.dumps({
        "benchmark": "encodings",
        "batch": args.batch,
        "repeat": args.repeat,
        "mlp": "3 x 64 -> 16",
        "results": results,
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
