"""Rendering speed of `hashgrid_nerf`: frames per second and peak memory; prints one JSON line.

    python benchmarks/bench_render.py [--checkpoint RUN/model.safetensors] [--sizes 256,512]
                                      [--frames 5] [--threads N] [--device cpu|cuda]

With a checkpoint: its own size, plate, regions and occupancy, driven by its own poses.
Without: an untrained model per size with a trained head's proportions (head region 18 % of
the frame, person region 55 %, occupancy on a ball filling 11 % of the head's box), so the
rays and samples per frame are about a real subject's. Per device (CPU, and CUDA when
present unless --device picks one): the median time per frame over `--frames` after one
warm-up frame; peak memory is the process's resident maximum (CPU) or torch's allocated
maximum (CUDA).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time


def synthetic_stage(size: int):
    import numpy as np
    import torch

    from geneface.plugins.hashgrid_nerf import HashGridNeRF

    stage = HashGridNeRF(HashGridNeRF.Config(size=size, n_poses=1, n_latents=1))
    net = stage.net
    y, x = np.mgrid[0:size, 0:size] / size
    head = (x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.24**2
    person = head | ((y > 0.55) & (np.abs(x - 0.5) < 0.25 + 0.5 * (y - 0.55)))
    d, half = 1.5, 0.15
    with torch.no_grad():
        net.head_region.copy_(torch.from_numpy(head))
        net.person_region.copy_(torch.from_numpy(person))
        net.c2w[0, 2, 3] = -d  # camera on the -z axis looking at the head
        net.intrinsics.copy_(torch.tensor([0.48 * size * d / (2 * half), size / 2, size / 2]))
        net.occupancy.lo.fill_(-half)
        net.occupancy.hi.fill_(half)
        r = net.occupancy.config.resolution
        g = (torch.arange(r) + 0.5) / r * 2 - 1
        ball = (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) < 0.6**2
        net.occupancy.occupied.copy_(ball)
    return stage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained hashgrid_nerf checkpoint (default: synthetic models)")
    parser.add_argument("--sizes", default="256,512", help="frame sides for the synthetic models")
    parser.add_argument("--frames", type=int, default=5, help="timed frames after one warm-up; the median is reported")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", help="cpu or cuda (default: CPU, and CUDA when present)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from geneface.core.records import Motion

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.checkpoint:
        from geneface.registry import get_registry

        stages = [get_registry().load(args.checkpoint, "renderer", "--checkpoint")]
    else:
        stages = [synthetic_stage(int(s)) for s in args.sizes.split(",")]
    results = []
    for device in devices:
        for stage in stages:
            stage.net.to(device)
            n = args.frames + 1
            mean = stage.net.condition.mean.cpu().numpy()
            motion = Motion(np.repeat(mean[None], n, 0))
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times, t0 = [], time.perf_counter()
            for _ in stage.render(motion):
                if device == "cuda":
                    torch.cuda.synchronize()
                t1 = time.perf_counter()
                times.append(t1 - t0)
                t0 = t1
            per_frame = statistics.median(times[1:])
            peak = (torch.cuda.max_memory_allocated() if device == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
            results.append({"device": device, "size": stage.config.size, "fps": round(1.0 / per_frame, 3),
                            "ms_per_frame": round(1000 * per_frame, 1), "peak_memory_mb": round(peak, 1),
                            "head_rays": int(stage.net.head_region.sum()),
                            "person_pixels": int(stage.net.person_region.sum()),
                            "occupied": round(stage.net.occupancy.occupied_fraction, 4)})
            stage.net.to("cpu")
    print(json.dumps({"bench": "render", "plugin": "hashgrid_nerf", "checkpoint": args.checkpoint,
                      "threads": torch.get_num_threads(), "frames": args.frames, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
