"""Build WebDataset shards of scene clips plus per-split instruction indexes.

Layout of ``out``::

    shard-000000.tar ...            one sample per scene clip (see shard_sample.py)
    instructions-<split>.jsonl      instructions whose scene is in the shards (schema of
                                    ross3d_data.instructions; ``scene_id`` is the sample key)
    manifest.json                   config, shards with their keys, splits, summary:
                                    ``scene_splits`` (clip -> splits of its instructions) and
                                    ``clip_splits`` (every clip -> those splits plus the
                                    ``split_lists`` naming it; [] = no split known)
    .cache/<fingerprint>/<scene>.tar  one prepared sample per scene (resume point; removed once
                                    a build completes with no failed scene)

Steps: (1) every scene is prepared by ``jobs.run_scene_jobs`` (engine ``local``: a process
pool; ``ray``: Ray tasks, retried when a worker dies) and written to the cache atomically
(a temp name unique to the writer, then rename), so a killed build resumes where it stopped
and a scene is never half-written; (2) the cached samples are packed in sorted scene order into
shards of at most ``max_shard_bytes`` (temp name, then rename); (3) indexes and the manifest
are written last. A rerun after a kill, or after a build with failed scenes, reuses the cached
scenes and retries the rest; a complete build is only redone with ``overwrite`` (which also
drops the cache: use it after changing a scene's files). Tar headers carry fixed
mtime/uid/gid/names and members a fixed order, and packing reads the cache in sorted scene
order (never in finish order), so the same inputs give byte-identical shards whatever the
engine, the number of workers, the finish order or interruptions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ross3d_data.core.engines import Engine, TaskResources, check_engine
from ross3d_data.core.jobs import JobSummary, make_out_dir, run_scene_jobs
from ross3d_data.instructions import Instruction, read_jsonl, write_jsonl
from ross3d_data.shards.sample import SampleConfig, encode_clip, prepare_clip

MANIFEST = "manifest.json"
FORMAT = "ross3d-shards/1"  # bump when the sample encoding changes (invalidates caches)
TAR_HEADER_BYTES = 1024  # header + padding estimate per member, for shard sizing
PREPARE_TASK = TaskResources(cpus=1.0, memory_gib=2.0)  # one scene's mesh + chosen frames


@dataclass(frozen=True)
class ShardConfig:
    """Inputs and knobs of ``build-shards`` (see the module docstring)."""

    scenes: tuple[Path, ...]
    out: Path
    instructions: tuple[Path, ...] = ()
    bev_dir: Path | None = None
    frames_dir: Path | None = None  # posed frames exported apart from the scans (load_scene)
    sample: SampleConfig = field(default_factory=SampleConfig)
    max_shard_bytes: int = 1 << 30
    workers: int = 1
    overwrite: bool = False
    engine: Engine = "local"  # where scenes are prepared (core.engines); same bytes on each
    ray_address: str | None = None
    # (split, file of scene ids) e.g. ("val", scannetv2_val.txt): recorded per clip in the
    # manifest, so a clip of a held-out split is never trained on without text
    split_lists: tuple[tuple[str, Path], ...] = ()
    scene_format: str | None = None  # a datasets.FORMATS name forced on every folder; None: detect

    def __post_init__(self) -> None:
        from ross3d_data.datasets.registry import check_format

        if not self.scenes:
            raise ValueError("no scene folders given")
        check_format(self.scene_format)
        check_engine(self.engine, self.ray_address)
        for split, path in self.split_lists:
            if split not in ("train", "val", "test"):
                raise ValueError(f"split list {path}: split must be train/val/test, got {split!r}")
            if not Path(path).is_file():
                raise ValueError(f"{path}: split list file not found")
        if self.max_shard_bytes < 1 << 16:
            raise ValueError(f"max_shard_bytes must be >= 65536, got {self.max_shard_bytes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        for path in self.instructions:
            if not Path(path).is_file():
                raise ValueError(f"{path}: instruction file not found")

    def fingerprint(self) -> str:
        """Hash of what a prepared sample depends on (cache entries are keyed by it)."""
        parts = [FORMAT, asdict(self.sample), str(self.bev_dir), str(self.frames_dir)]
        if self.scene_format is not None:  # a forced format may read a folder differently
            parts.append(self.scene_format)
        key = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class ShardSummary:
    """What a build produced and what it skipped."""

    scenes: int = 0
    samples: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # scene -> reason
    reused: int = 0
    shards: list[str] = field(default_factory=list)
    instructions: dict[str, int] = field(default_factory=dict)  # split -> count
    vision_only: int = 0
    skipped_frames: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_instructions: dict[str, int] = field(default_factory=dict)  # reason -> count
    # scene -> its clip's views that repeat an earlier view's frame (fewer usable frames
    # than views); only scenes with repeats
    repeated_views: dict[str, int] = field(default_factory=dict)
    jobs: JobSummary | None = None

    def to_json(self) -> dict[str, Any]:
        """What was built, not how (no ``reused``/``jobs``): a build resumed after a kill
        writes the same manifest bytes as an uninterrupted one."""
        return {k: v for k, v in asdict(self).items() if k not in ("jobs", "reused")}

    def table(self) -> Table:
        """Rich table of the counts (the per-scene job table is ``jobs.table()``)."""
        table = Table(title="build-shards", title_justify="left")
        table.add_column("what")
        table.add_column("count", overflow="fold")
        rows = [
            ("scenes", self.scenes), ("samples packed", self.samples),
            ("reused from cache", self.reused), ("failed scenes", len(self.failed)),
            ("shards", len(self.shards)), ("vision-only clips", self.vision_only),
            *((f"instructions ({s})", n) for s, n in self.instructions.items()),
            *((f"skipped frames: {r}", n) for r, n in self.skipped_frames.items()),
            *((f"skipped instructions: {r}", n) for r, n in self.skipped_instructions.items()),
            *((("clips repeating frames", len(self.repeated_views)),) if self.repeated_views
              else ()),
        ]  # fmt: skip
        for what, n in rows:
            table.add_row(what, str(n))
        return table

    def warnings(self, views: int) -> list[str]:
        """One line per thing a user should act on (clips of ``views`` views repeating
        frames: the scene has fewer usable frames than views)."""
        if not self.repeated_views:
            return []
        shown = [f"{k}: {views - n} frames" for k, n in list(self.repeated_views.items())[:5]]
        more = len(self.repeated_views) - len(shown)
        return [
            f"{len(self.repeated_views)} of {self.samples} clips repeat frames: fewer usable "
            f"frames than --views {views} ({', '.join(shown)}{f', ... {more} more' * (more > 0)}); "
            "pass a smaller --views, or export more frames (export-frames --every)"
        ]


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """Deterministic tar (GNU format, fixed headers), written to a temp name then renamed.

    The temp name is unique to the writing process, so two attempts at the same scene (a
    worker left running by a killed driver, and the rerun's) never write into one file; the
    last rename wins with the same bytes.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
    os.replace(tmp, path)


def read_tar(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def _prepare_job(payload: tuple[Path, ShardConfig, Path, str]) -> str:
    """Worker: prepare one scene and cache its sample (members named ``<key>.<name>``)."""
    scene_dir, cfg, cache_dir, scene_id = payload
    clip = prepare_clip(scene_dir, cfg.sample, cfg.bev_dir, cfg.frames_dir, cfg.scene_format)
    if clip.scene_id != scene_id or "." in clip.scene_id:
        raise ValueError(f"{scene_dir}: scene id {clip.scene_id!r} is not a usable sample key")
    members = [(f"{clip.scene_id}.{name}", data) for name, data in encode_clip(clip)]
    write_tar(cache_dir / f"{clip.scene_id}.tar", members)
    notes = [f"{k}: {v}" for k, v in clip.meta["skipped_frames"].items()]
    repeats = repeated_views(clip.arrays["frame_ids"])
    if repeats:
        notes.append(f"{repeats} of {len(clip.arrays['frame_ids'])} views repeat a frame")
    return ", ".join(notes) or "ok"


def repeated_views(frame_ids: np.ndarray) -> int:
    """Views of a clip that show a frame an earlier view already shows."""
    return len(frame_ids) - len(set(np.asarray(frame_ids).tolist()))


def _prepare_all(cfg: ShardConfig, cache_dir: Path, console: Console) -> JobSummary:
    from ross3d_data.datasets import find_scenes
    from ross3d_data.datasets.registry import scene_id_of

    fmt = cfg.scene_format
    dirs = sorted({d for root in cfg.scenes for d in find_scenes(Path(root), fmt)})
    # the id load_scene gives (ScanNet: the folder name; 3rscan-<id>, arkitscenes-<id>, ...)
    items = [(sid, (d, cfg, cache_dir, sid)) for d in dirs for sid in [scene_id_of(d, fmt)]]
    ids = [i for i, _ in items]
    dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dupes:
        raise ValueError(f"scene ids found in more than one folder: {', '.join(dupes)}")
    return run_scene_jobs(
        items, _prepare_job, workers=cfg.workers, desc="prepare clips",
        is_done=lambda p: (p[2] / f"{p[3]}.tar").is_file(), console=console,
        engine=cfg.engine, ray_address=cfg.ray_address, resources=PREPARE_TASK,
    )  # fmt: skip


class _ShardWriter:
    """Streams samples into shard-NNNNNN.tar files of at most ``max_bytes`` (temp, then rename)."""

    def __init__(self, out: Path, max_bytes: int) -> None:
        self.out, self.max_bytes = out, max_bytes
        self.shards: list[dict[str, Any]] = []
        self.tar: tarfile.TarFile | None = None
        self.size = 0

    def add(self, key: str, members: list[tuple[str, bytes]]) -> None:
        sample_bytes = sum(len(d) + TAR_HEADER_BYTES for _, d in members)
        if self.tar is not None and self.size + sample_bytes > self.max_bytes:
            self.close()
        if self.tar is None:
            name = f"shard-{len(self.shards):06d}.tar"
            tmp = self.out / (name + ".tmp")
            self.tar = tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT)  # noqa: SIM115 (close() closes it)
            self.shards.append({"name": name, "keys": []})
            self.size = 0
        for name, data in members:
            self.tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
        self.shards[-1]["keys"].append(key)
        self.size += sample_bytes

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            name = self.shards[-1]["name"]
            os.replace(self.out / (name + ".tmp"), self.out / name)
            self.tar = None


def _pack(
    cache_files: list[Path], out: Path, max_bytes: int
) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """Pack cached samples (in the given order); returns (shards, skipped-frame counts,
    repeated views per scene that has any)."""
    writer = _ShardWriter(out, max_bytes)
    skipped: Counter = Counter()
    repeats: dict[str, int] = {}
    for path in cache_files:
        members = read_tar(path)
        by_name = dict(members)
        skipped.update(json.loads(by_name[f"{path.stem}.meta.json"])["skipped_frames"])
        frame_ids = np.load(io.BytesIO(by_name[f"{path.stem}.frame_ids.npy"]), allow_pickle=False)
        if n := repeated_views(frame_ids):
            repeats[path.stem] = n
        writer.add(path.stem, members)
    writer.close()
    return writer.shards, dict(sorted(skipped.items())), repeats


def _index_instructions(
    files: tuple[Path, ...], keys: set[str], summary: ShardSummary
) -> dict[str, list[Instruction]]:
    by_split: dict[str, list[Instruction]] = defaultdict(list)
    seen: set[str] = set()
    skipped: Counter = Counter()
    for path in files:
        for inst in read_jsonl(path):
            if inst.id in seen:
                skipped["duplicate id"] += 1
            elif inst.scene_id not in keys:
                skipped["scene not in shards"] += 1
            else:
                seen.add(inst.id)
                by_split[inst.split].append(inst)
    summary.skipped_instructions = dict(sorted(skipped.items()))
    return {s: sorted(v, key=lambda i: i.id) for s, v in sorted(by_split.items())}


def _start(cfg: ShardConfig) -> Path:
    """Cache dir for this build; refuses to redo a complete build unless ``overwrite``."""
    out = make_out_dir(cfg.out)
    if (out / MANIFEST).exists():
        complete = not read_manifest(out)["summary"]["failed"]
        if complete and not cfg.overwrite:
            raise FileExistsError(f"{out / MANIFEST}: shards already built here; pass overwrite")
        (out / MANIFEST).unlink()  # rebuilt below; never left pointing at shards being rewritten
    if cfg.overwrite and (out / ".cache").exists():
        shutil.rmtree(out / ".cache")
    cache_dir = out / ".cache" / cfg.fingerprint()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir


def build_shards(cfg: ShardConfig, console: Console | None = None) -> ShardSummary:
    """Prepare, pack and index; returns a summary (see the module docstring)."""
    console = console or Console(stderr=True)
    out = Path(cfg.out)
    cache_dir = _start(cfg)
    jobs = _prepare_all(cfg, cache_dir, console)
    done = {r.name: r for r in jobs.results if r.status != "failed"}
    summary = ShardSummary(scenes=len(jobs.results), jobs=jobs, reused=jobs.count("skipped"))
    summary.failed = {r.name: r.detail for r in jobs.failed}
    cache_files = [cache_dir / f"{k}.tar" for k in sorted(done)]
    for stale in [*out.glob("shard-*.tar"), *out.glob("shard-*.tar.tmp")]:
        stale.unlink()
    shards, summary.skipped_frames, summary.repeated_views = _pack(
        cache_files, out, cfg.max_shard_bytes
    )
    summary.shards = [s["name"] for s in shards]
    summary.samples = len(cache_files)
    indexes = _index_instructions(cfg.instructions, set(done), summary)
    for stale in out.glob("instructions-*.jsonl"):
        stale.unlink()
    for split, insts in indexes.items():
        write_jsonl(insts, out / f"instructions-{split}.jsonl")
    summary.instructions = {s: len(v) for s, v in indexes.items()}
    with_text = {i.scene_id for v in indexes.values() for i in v}
    summary.vision_only = len(set(done) - with_text)
    _write_manifest(out, cfg, shards, indexes, summary)
    if not summary.failed:  # complete: nothing left to resume, free the disk
        shutil.rmtree(out / ".cache")
    return summary


def read_scene_list(path: Path) -> list[str]:
    """Scene ids of a list file (one per line, as ScanNet's scannetv2_<split>.txt; blank lines
    and ``#`` comments skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s for line in lines if (s := line.split("#", 1)[0].strip())]


def _clip_splits(cfg: ShardConfig, keys: list[str], text_splits: dict) -> dict[str, list[str]]:
    """Every clip -> sorted splits that name it (its instructions' and the split lists')."""
    listed: dict[str, set[str]] = defaultdict(set)
    for split, path in cfg.split_lists:
        for scene_id in read_scene_list(path):
            listed[scene_id].add(split)
    return {k: sorted(listed[k] | set(text_splits.get(k, ()))) for k in sorted(keys)}


def _write_manifest(out, cfg, shards, indexes, summary: ShardSummary) -> None:
    splits_of: dict[str, list[str]] = defaultdict(list)
    for split, insts in indexes.items():
        for scene_id in sorted({i.scene_id for i in insts}):
            splits_of[scene_id].append(split)
    keys = [k for s in shards for k in s["keys"]]
    manifest = {
        "format": FORMAT,
        "sample": asdict(cfg.sample),
        "shards": shards,
        "instruction_files": {s: f"instructions-{s}.jsonl" for s in indexes},
        "scene_splits": dict(sorted(splits_of.items())),
        "clip_splits": _clip_splits(cfg, keys, splits_of),
        "summary": summary.to_json(),
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out / MANIFEST)


def read_manifest(shard_dir: Path) -> dict[str, Any]:
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (build-shards did not finish here?)")
    return json.loads(path.read_text())
