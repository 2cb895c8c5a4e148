"""Engines that run the per-scene unit of work: ``local`` (this process or a process pool) and
``ray`` (Ray Core tasks on a local or a remote Ray cluster).

The unit of work is the same for every engine: :func:`run_unit` calls a module-level
``fn(payload)`` (which writes the scene's output files, atomically, and returns a short note or
a value) and turns it into an :class:`Outcome`; an exception becomes a failed outcome whose
``value`` is the one-line reason, so a Python error is that scene's failure on every engine and
is never retried (it would fail the same way again). Only the death of the process running a
unit is retried: the ``ray`` engine resubmits the task up to ``max_retries`` times (Ray's
``max_retries``; ``retry_exceptions`` stays off); the ``local`` pool reports it as a failure.

:func:`run_units` yields ``(index, Outcome)`` as units finish, in any order; callers that need
input order (``jobs.run_scene_jobs``, the clip caches) reorder by index. ``workers`` is the
number of units in flight on every engine; the ``ray`` engine starts a new local Ray instance
of ``workers * cpus`` CPUs unless ``ray_address`` (or else the ``RAY_ADDRESS`` variable, as
``ray job submit`` sets it) names a running cluster (``"auto"``: the one ``ray start`` began on
this machine; a ``host:port``; ``ray://host:10001``), or Ray is already initialised here.
``ray`` is imported only when the ray engine runs (extra ``ross3d-data[ray]``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ross3d_data.core.errors import SceneError

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)
RAY_INSTALL = "pip install 'ross3d-data[ray]'"
GIB = 1 << 30


class EngineError(RuntimeError):
    """An engine cannot run at all (Ray missing, no node big enough for one task)."""


def check_engine(engine: str, ray_address: str | None) -> None:
    """ValueError unless ``engine`` is known and ``ray_address`` is only given to ``ray``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if ray_address is not None and engine != "ray":
        raise ValueError(f"ray_address={ray_address!r} is only used by engine 'ray'")


@dataclass(frozen=True)
class TaskResources:
    """What one unit reserves on a Ray node (``cpus`` may be fractional; ``memory_gib`` is a
    scheduling reservation, not a limit: 0 reserves none)."""

    cpus: float = 1.0
    memory_gib: float = 1.0

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.memory_gib < 0:
            raise ValueError(f"task resources must be positive, got {self}")


@dataclass(frozen=True)
class EngineConfig:
    """How to run units: see the module docstring."""

    engine: Engine = "local"
    workers: int = 1
    ray_address: str | None = None
    resources: TaskResources = TaskResources()
    max_retries: int = 3  # ray: resubmissions after the worker process died

    def __post_init__(self) -> None:
        check_engine(self.engine, self.ray_address)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


@dataclass(frozen=True)
class Outcome:
    """Result record of one unit: ``value`` is fn's return when ``ok``, else the reason."""

    ok: bool
    value: Any
    seconds: float


def failure_reason(e: BaseException) -> str:
    """One line: a SceneError's own message (it names the file), else ``Type: message``."""
    text = str(e) if isinstance(e, SceneError) else f"{type(e).__name__}: {e}"
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def run_unit(fn: Callable[[Any], Any], payload: Any) -> Outcome:
    """Run one unit; any exception becomes a failed Outcome, so nothing escapes a worker."""
    t0 = time.perf_counter()
    try:
        value = fn(payload)
    except Exception as e:  # one bad scene must not stop the batch
        return Outcome(False, failure_reason(e), time.perf_counter() - t0)
    return Outcome(True, value, time.perf_counter() - t0)


def run_units(
    fn: Callable[[Any], Any], payloads: Sequence[tuple[int, Any]], cfg: EngineConfig
) -> Iterator[tuple[int, Outcome]]:
    """Run ``fn`` on every ``(index, payload)``; yields ``(index, Outcome)`` as each finishes."""
    if cfg.engine == "ray":
        yield from _run_ray(fn, payloads, cfg)
    elif cfg.workers == 1 or len(payloads) <= 1:
        for k, payload in payloads:
            yield k, run_unit(fn, payload)
    else:
        yield from _run_pool(fn, payloads, cfg.workers)


def in_order(outcomes: Iterator[tuple[int, Outcome]], n: int) -> Iterator[Outcome]:
    """The outcomes of indexes ``0 .. n-1`` in index order (early ones wait in a buffer)."""
    waiting: dict[int, Outcome] = {}
    nxt = 0
    for k, outcome in outcomes:
        waiting[k] = outcome
        while nxt in waiting:
            yield waiting.pop(nxt)
            nxt += 1
    if nxt != n:
        raise RuntimeError(f"engine returned {nxt} of {n} outcomes in order")


def _run_pool(fn, payloads, workers: int) -> Iterator[tuple[int, Outcome]]:
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with open3d/torch threads
    pool = ProcessPoolExecutor(max_workers=min(workers, len(payloads)), mp_context=ctx)
    try:
        futures: dict[Future, int] = {pool.submit(run_unit, fn, p): k for k, p in payloads}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except BrokenProcessPool:
                reason = "worker process died (killed or out of memory)"
                yield futures[fut], Outcome(False, reason, 0.0)
            except Exception as e:  # e.g. an unpicklable payload: still only this scene fails
                yield futures[fut], Outcome(False, failure_reason(e), 0.0)
    finally:  # also when the caller stops early: drop the units not started
        pool.shutdown(wait=True, cancel_futures=True)


def import_ray():
    """The ``ray`` module, or EngineError naming the extra that installs it.

    Ray's ``uv run`` hook is turned off (unless ``RAY_ENABLE_UV_RUN_RUNTIME_ENV`` is set):
    under ``uv run`` it would upload the current folder (wherever the command runs, e.g. a
    data folder) as every job's working_dir and rebuild the environment from it on each
    worker; the engine's workers run the installed ross3d-data instead, like the local pool.
    """
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # read when ray is imported
    try:
        import ray
    except ImportError:
        raise EngineError(
            f"engine 'ray' needs Ray, which is not installed: {RAY_INSTALL}"
        ) from None
    return ray


@contextmanager
def ray_session(cfg: EngineConfig):
    """Ray, initialised for ``cfg`` (reusing an initialised one; shut down only if started)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        common = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
        if address is None:  # "local": a new instance even if `ray start` ran on this machine
            cpus = math.ceil(cfg.workers * cfg.resources.cpus)
            ray.init(address="local", num_cpus=cpus, **common)
        else:
            try:
                ray.init(address=address, **common)
            except ConnectionError as e:
                msg = f"cannot connect to the Ray cluster at {address!r}: {e}"
                raise EngineError(msg.splitlines()[0]) from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _check_fits(ray, cfg: EngineConfig) -> None:
    """EngineError when no alive node can hold one task (it would wait forever)."""
    need = {"CPU": cfg.resources.cpus, "memory": cfg.resources.memory_gib * GIB}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(r.get(k, 0) >= v for k, v in need.items()) for r in nodes):
        return
    best = max(nodes, key=lambda r: r.get("memory", 0), default={})
    msg = (
        f"no Ray node can run a task needing {need['CPU']:g} CPU and "
        f"{cfg.resources.memory_gib:g} GiB (largest node: {best.get('CPU', 0):g} CPU, "
        f"{best.get('memory', 0) / GIB:.1f} GiB)"
    )
    if not (cfg.ray_address or os.environ.get("RAY_ADDRESS")):  # a local instance: fixed size
        raise EngineError(msg)
    warnings.warn(msg + "; waiting for the cluster to grow", stacklevel=3)


def _run_ray(fn, payloads, cfg: EngineConfig) -> Iterator[tuple[int, Outcome]]:
    if not payloads:
        return
    with ray_session(cfg) as ray:
        _check_fits(ray, cfg)
        task = ray.remote(run_unit).options(
            num_cpus=cfg.resources.cpus,
            memory=int(cfg.resources.memory_gib * GIB) or None,
            max_retries=cfg.max_retries,
            retry_exceptions=False,  # run_unit returns Python errors; only deaths are retried
        )
        queue = list(payloads)[::-1]
        pending: dict[Any, int] = {}
        try:
            while queue or pending:
                while queue and len(pending) < cfg.workers:
                    k, payload = queue.pop()
                    pending[task.remote(fn, payload)] = k
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                yield pending.pop(ref), _ray_outcome(ray, ref, cfg)
        finally:
            for ref in pending:  # the driver stopped early: do not leave work running
                ray.cancel(ref, force=True)


def _ray_outcome(ray, ref, cfg: EngineConfig) -> Outcome:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:  # the worker died on every attempt, or similar
        what = type(e).__name__
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        tries = cfg.max_retries + 1
        return Outcome(False, f"{what} after {tries} attempt(s): {first}"[:300], 0.0)
