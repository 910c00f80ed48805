"""`geneface process-corpus --ray`: one Ray task per clip, on a local Ray or a cluster.

Ray does the scheduling, placement and retries; this module only says what a clip needs and
what to do with each result (docs/distributed.md):

- Every task declares its CPUs (`cpus_per_clip`) and memory (`memory_per_clip_gb`), so Ray
  never puts more clips on a node than it can hold.
- A task runs `process_clip` (handed down by the application layer) inside a Ray worker
  process. A clip that fails by its input returns its one-line error; a worker that dies
  (killed, out of memory, a segfault in a native library) is restarted by Ray and the task run
  again (`max_retries`), resuming the clip's work folder: nothing done is lost, and nothing
  half-written ever looks complete (the dataset is renamed into place at its end). A clip that
  still fails is reported; the others go on.
- Workers are recycled every `recycle_after` clips, so a slow leak in a native library cannot
  grow without bound over a corpus of 100k clips.
- Outputs are written by the workers straight into the output folder, which must therefore
  be one every node can write (a shared file system) when the cluster has several machines.
- At most `in_flight` tasks are queued at once: Ray is not handed 100k tasks in one go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Callable, Iterator, Optional, Sequence

import attrs

from geneface.core.config import unstructure
from geneface.core.native_log import native_logs_silenced
from geneface.errors import UsageError
from geneface.processing.config import ProcessConfig
from geneface.processing.corpus import ClipJob, ClipResult

INSTALL_HINT = "Ray is not installed: pip install 'geneface[distributed]' (or pip install ray)"
LOCAL = "local"
# Environment the workers get: mediapipe's and TensorFlow Lite's C++ logging kept quiet, and
# the caller's plugin selection (GENEFACE_PLUGINS) kept, as the local pool's workers inherit it.
_QUIET_NATIVE_LOGS = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}


# Joining a cluster whose address does not answer: one connection attempt, unless the user set
# RAY_gcs_server_port_wait_time_s (Ray's default is 20 attempts of about 41 s each; measured,
# Ray 2.60: 43 s to our line instead of more than 5 minutes). Ray's C++ timeouts within an
# attempt (RAY_gcs_rpc_server_connect_timeout_s, RAY_py_gcs_connect_timeout_s) are read when
# ray is imported, so only the caller's environment can shorten them.
_BOUNDED_JOIN = {"RAY_gcs_server_port_wait_time_s": "1"}


@contextlib.contextmanager
def _environ(defaults: dict):
    """`defaults` set in os.environ where the user has not set them, for the block only."""
    added = [k for k in defaults if k not in os.environ]
    os.environ.update({k: defaults[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def _clip_task(process_clip: Callable, config: dict, clip: str, out: str) -> tuple[bool, object, float]:
    """The body of one Ray task: (ok, result or error, seconds)."""
    started = time.perf_counter()
    ok, result = process_clip(config, clip, out)
    return ok, result, round(time.perf_counter() - started, 2)


@attrs.frozen
class RayRunner:
    """Clips as Ray tasks. `address`: "local" starts a Ray on this machine with `local_cpus`
    CPUs (and stops it at the end); "auto" or "HOST:PORT" / "ray://HOST:PORT" joins a cluster."""

    process_clip: Callable  # (config dict, video, out) -> (ok, result dict or error): runs in the worker
    address: str = LOCAL
    local_cpus: int = 1
    cpus_per_clip: float = 1.0
    memory_per_clip_gb: Optional[float] = 2.0
    max_retries: int = 2
    recycle_after: int = 50
    in_flight: Optional[int] = None  # default: twice the cluster's CPUs / cpus_per_clip

    def describe(self) -> str:
        where = f"a local Ray ({self.local_cpus} CPUs)" if self.address == LOCAL else f"the Ray cluster at {self.address}"
        memory = f", {self.memory_per_clip_gb:g} GB" if self.memory_per_clip_gb else ""
        return f"{where}, one task per clip ({self.cpus_per_clip:g} CPU{memory} each)"

    def _init(self, ray) -> bool:
        """Start or join Ray; True when this call started it (and so must stop it)."""
        if ray.is_initialized():
            return False
        # Ray's own notices silenced where they are made, its Python logger `ray` (the
        # token-authentication notice of every local start); its errors still show. (Its C++
        # client's warnings while it cannot reach a cluster are dropped below:
        # RAY_BACKEND_LOG_LEVEL does not reach them in Ray 2.60.)
        logging.getLogger("ray").setLevel(logging.ERROR)
        env = dict(_QUIET_NATIVE_LOGS)
        if os.environ.get("GENEFACE_PLUGINS") is not None:
            env["GENEFACE_PLUGINS"] = os.environ["GENEFACE_PLUGINS"]
        kwargs = dict(runtime_env={"env_vars": env}, log_to_driver=False, include_dashboard=False,
                      configure_logging=False)
        try:
            if self.address == LOCAL:
                ray.init(num_cpus=self.local_cpus, **kwargs)
            else:
                # Joining a cluster: one try (_BOUNDED_JOIN), and its C++ client's warnings
                # kept off stderr.
                # Not for a local start: the Ray processes it spawns would inherit the held fd 2.
                with native_logs_silenced(), _environ(_BOUNDED_JOIN):
                    ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--ray {self.address}: cannot start or reach Ray ({exc})") from None
        return True

    def run(self, config: ProcessConfig, jobs: Sequence[ClipJob]) -> Iterator[tuple[ClipJob, ClipResult]]:
        if not jobs:
            return
        ray = import_ray()
        started_here = self._init(ray)
        try:
            yield from self._run(ray, unstructure(config), list(jobs))
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, config: dict, jobs: list[ClipJob]) -> Iterator[tuple[ClipJob, ClipResult]]:
        options = dict(num_cpus=self.cpus_per_clip, max_retries=self.max_retries, max_calls=self.recycle_after)
        if self.memory_per_clip_gb:
            options["memory"] = int(self.memory_per_clip_gb * 2**30)
        task = ray.remote(**options)(_clip_task)
        cluster_cpus = float(ray.cluster_resources().get("CPU", 1))
        if cluster_cpus < self.cpus_per_clip:
            raise UsageError(f"--cpus-per-clip {self.cpus_per_clip:g}: the Ray cluster has only {cluster_cpus:g} CPUs")
        limit = self.in_flight or max(2, int(2 * cluster_cpus // self.cpus_per_clip))
        fn = ray.put(self.process_clip)
        queue = iter(jobs)
        pending: dict = {}

        def submit() -> None:
            job = next(queue, None)
            if job is not None:
                pending[task.remote(fn, config, str(job.clip), str(job.out))] = job

        for _ in range(limit):
            submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                yield job, self._result(ray, ref)
                submit()

    @staticmethod
    def _result(ray, ref) -> ClipResult:
        try:
            ok, result, seconds = ray.get(ref)
        except ray.exceptions.RayError as exc:
            # The worker died on every try (killed, out of memory, a crash in native code).
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return ClipResult(False, None, f"Ray worker failed: {type(exc).__name__}: {first}")
        return ClipResult(True, result, None, seconds) if ok else ClipResult(False, None, str(result), seconds)

