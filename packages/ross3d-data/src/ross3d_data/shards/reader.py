"""The one reader of build-shards output: random access to clips, the example list, decoding.

``ShardReader(folder)`` opens a build-shards folder (``manifest.json``, ``shard-*.tar``,
``instructions-<split>.jsonl``; layout in ``ross3d_data.shards.build``):

* ``keys``: clip keys (= scene ids) in shard order;
* ``sample(key)``: the clip's raw members ``{"__key__": key, "<member>": bytes, ...}`` (the
  WebDataset sample layout ``shard_sample.decode_clip`` reads), read from a tar member index
  built once when the reader opens (tar headers only, no member data is read);
* ``clip(key)``: the decoded ``Clip`` (numpy), kept in an LRU of ``cache_clips`` clips; the
  arrays are shared by every caller, never modify them in place;
* ``instructions(split)``: ``{key: [instruction dict, ...]}`` sorted by instruction id;
* ``examples(split, tasks=None, vision_only=())``: ``[(key, instruction), ...]`` in (key, id)
  order, then ``(key, None)`` per usable vision-only clip of the given scene ids;
* ``splits_of(key)``: the splits recorded for the clip by build-shards (splits of the
  instructions that name it, plus ``--split-list`` memberships);
* ``vision_only(scenes)``: the text-free clips allowed for reconstruction-only training.

It is torch-free and thread-safe (members are read with ``os.pread``; the LRU has a lock), and
survives ``fork`` (each process reopens the shard files). Nothing else in the code base parses
shards: the torch loader (``ross3d_data.shards.loader``), training and ``predict`` all read through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ross3d_data.core.ids import dataset_of
from ross3d_data.shards.build import read_manifest
from ross3d_data.shards.sample import Clip, decode_clip

HELD_OUT_SPLITS = frozenset({"val", "test"})


@dataclass(frozen=True)
class _Member:
    shard: int  # index into ShardReader.shard_paths
    name: str  # member name without the "<key>." prefix
    offset: int  # byte offset of the member data in the tar
    size: int


def _index_shard(path: Path, shard: int, into: dict[str, list[_Member]]) -> None:
    """Member offsets of one tar (reads headers only: tarfile seeks over member data)."""
    with tarfile.open(path) as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, dot, name = info.name.partition(".")
            if not dot:
                raise ValueError(f"{path}: member {info.name!r} is not named <key>.<member>")
            into.setdefault(key, []).append(_Member(shard, name, info.offset_data, info.size))


def _read_instructions(path: Path) -> dict[str, list[dict]]:
    index: dict[str, list[dict]] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                inst = json.loads(line)
                index.setdefault(inst["scene_id"], []).append(inst)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{n}: not an instruction line ({err})") from err
    return {k: sorted(v, key=lambda i: i["id"]) for k, v in index.items()}


class ShardReader:
    """Random access to one build-shards folder (see the module docstring)."""

    def __init__(self, folder: str | Path, *, cache_clips: int = 4) -> None:
        if cache_clips < 0:
            raise ValueError(f"cache_clips must be >= 0, got {cache_clips}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such build-shards folder")
        self.manifest = read_manifest(self.folder)
        self.shard_paths = [self.folder / s["name"] for s in self.manifest["shards"]]
        if not self.shard_paths:
            raise ValueError(f"{self.folder}: the manifest lists no shards")
        self._members: dict[str, list[_Member]] = {}
        for i, path in enumerate(self.shard_paths):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: shard listed in the manifest is missing")
            _index_shard(path, i, self._members)
        self.keys = [k for s in self.manifest["shards"] for k in s["keys"]]
        missing = [k for k in self.keys if k not in self._members]
        if missing:
            raise ValueError(f"{self.folder}: manifest keys not in the shards: {missing[:5]}")
        self._splits = _clip_splits(self.manifest, self.keys)
        self._with_text = set(self.manifest["scene_splits"])  # named by some instruction
        self._instructions: dict[str, dict[str, list[dict]]] = {}
        self._cache_size = cache_clips
        self._cache: OrderedDict[str, Clip] = OrderedDict()
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def _fd(self, shard: int) -> int:
        with self._lock:
            if self._pid != os.getpid():  # forked (DataLoader worker): never share offsets/fds
                self._fds, self._pid = {}, os.getpid()
                self._cache.clear()
            if shard not in self._fds:
                self._fds[shard] = os.open(self.shard_paths[shard], os.O_RDONLY)
            return self._fds[shard]

    def sample(self, key: str) -> dict[str, Any]:
        """Raw members of clip ``key`` (KeyError naming the folder for an unknown key)."""
        if key not in self._members:
            raise KeyError(f"{self.folder}: no clip {key!r} in the shards")
        out: dict[str, Any] = {"__key__": key}
        for m in self._members[key]:
            data = os.pread(self._fd(m.shard), m.size, m.offset)
            if len(data) != m.size:
                raise ValueError(f"{self.shard_paths[m.shard]}: member {key}.{m.name} truncated")
            out[m.name] = data
        return out

    def clip(self, key: str) -> Clip:
        """Decoded clip ``key``; the newest ``cache_clips`` decoded clips are kept."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        clip = decode_clip(self.sample(key))
        with self._lock:
            if self._cache_size:
                self._cache[key] = clip
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return clip

    def instructions(self, split: str) -> dict[str, list[dict]]:
        """``{key: instructions}`` of ``split`` ({} when the folder has no index for it)."""
        if split not in self._instructions:
            path = self.folder / f"instructions-{split}.jsonl"
            found = _read_instructions(path) if path.is_file() else {}
            unknown = sorted(set(found) - set(self._members))
            if unknown:
                raise ValueError(
                    f"{path}: instructions name clips not in the shards: {unknown[:5]}"
                )
            self._instructions[split] = found
        return self._instructions[split]

    def examples(
        self,
        split: str,
        tasks: Iterable[str] | None = None,
        *,
        vision_only: Iterable[str] = (),
        vision_sources: Iterable[str] = (),
    ) -> list[tuple[str, dict | None]]:
        """``(key, instruction)`` of every instruction of ``split`` (only ``tasks`` if given), in
        (key, id) order, then ``(key, None)`` for each usable clip of ``vision_only`` (scene
        ids; see :meth:`vision_only`) or of a dataset in ``vision_sources`` (``scannet``,
        ``arkitscenes``, ...; see ``core.ids.dataset_of``), each clip once, in key order."""
        wanted = None if tasks is None else set(tasks)
        index = self.instructions(split)
        pairs: list[tuple[str, dict | None]] = [
            (key, inst)
            for key in self.keys
            for inst in index.get(key, [])
            if wanted is None or inst["task"] in wanted
        ]
        textless = set(self.vision_only(vision_only)[0])
        textless |= set(self.vision_only(self.clips_of(vision_sources))[0])
        return pairs + [(key, None) for key in self.keys if key in textless]

    def clips_of(self, datasets: Iterable[str]) -> list[str]:
        """Keys of the clips whose scene id belongs to one of ``datasets``."""
        wanted = set(datasets)
        return [key for key in self.keys if dataset_of(key) in wanted]

    def splits_of(self, key: str) -> tuple[str, ...]:
        """Splits build-shards recorded for the clip (sorted; empty: no split known)."""
        return self._splits.get(key, ())

    def held_out(self, key: str) -> bool:
        """True when a val/test instruction or split list names the clip."""
        return bool(HELD_OUT_SPLITS & set(self.splits_of(key)))

    def vision_only(self, scenes: Iterable[str]) -> tuple[list[str], list[str]]:
        """``(usable, refused)`` keys among ``scenes`` for reconstruction-only training.

        Usable: in the shards, no instruction of any split names it and it is not held out.
        Refused (never trained on without text, whatever the list says): held-out clips.
        Listed scenes with instructions are trained with their text only; scenes not in the
        shards are ignored.
        """
        wanted = set(scenes)
        usable, refused = [], []
        for key in self.keys:
            if key not in wanted:
                continue
            if self.held_out(key):
                refused.append(key)
            elif key not in self._with_text:
                usable.append(key)
        return usable, refused

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                for fd in self._fds.values():
                    os.close(fd)
            self._fds = {}

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing left to do
            self.close()

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawn-started workers
        state = dict(self.__dict__)
        state.update(_lock=None, _fds={}, _cache=OrderedDict())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._pid = os.getpid()


def _clip_splits(manifest: dict, keys: list[str]) -> dict[str, tuple[str, ...]]:
    """Recorded splits per clip: ``clip_splits`` (instruction splits and split lists; written
    since split lists exist) else ``scene_splits`` (instruction splits only)."""
    recorded = manifest.get("clip_splits", manifest.get("scene_splits", {}))
    return {k: tuple(sorted(recorded.get(k, ()))) for k in keys}
