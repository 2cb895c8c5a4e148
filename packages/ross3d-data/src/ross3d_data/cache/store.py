"""Per-clip cache of derived arrays (HDF5, torch-free): values constant per clip, costly to redo.

One file per *kind* of derived value, all in one format, next to the shards::

    <shard folder>/clip-cache/<kind>.h5
      attrs   format = "ross3d-clip-cache/1", kind, params (JSON), source (shard build digest)
      /clips/<clip key>           group, attrs fingerprint (hex)
      /clips/<clip key>/<name>    datasets (masks gzip level 1, float latents raw)

Kinds in use: ``patch_masks`` (``ross3d_data.cache.patch_masks``: grounding patch masks per clip,
written by ``ross3d-data cache-clips``) and ``bev_latents`` (``ross3d_model.inputs.caches``: the
BEV image's VAE latent mean and std, written by ``ross3d-model cache-latents``).

Staleness is refused, never silently used:

* ``params`` are the config values the kind depends on; a reader asking for other values gets
  :class:`StaleCacheError` at open, naming both sets;
* ``source`` is :func:`shard_source_digest` of the shard build (shard names, clip keys, sample
  config); a cache from another build is refused at open;
* each clip's ``fingerprint`` hashes the params and the clip's own input arrays
  (:func:`fingerprint`); the reader recomputes it from the clip it holds before the first read
  of that clip in a process, so a clip whose content changed under an unchanged manifest is
  refused too.

Files are written under a temporary name and renamed when complete (a killed writer leaves no
half-written cache). Readers open the file lazily per process (safe with forked workers).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "ross3d-clip-cache/1"
CACHE_DIR = "clip-cache"


class StaleCacheError(ValueError):
    """A cache file does not match the data or config it is asked for; the message says why and
    how to rebuild it (the CLIs print it as an error, like any bad input)."""


def cache_path(shard_dir: str | Path, kind: str) -> Path:
    """Where a shard folder's cache of ``kind`` lives."""
    return Path(shard_dir) / CACHE_DIR / f"{kind}.h5"


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def fingerprint(kind: str, params: Mapping[str, Any], inputs: Mapping[str, np.ndarray]) -> str:
    """Hex digest of the kind, its params and the clip's input arrays (name, dtype, shape,
    bytes, in name order): equal iff the derived value would be recomputed identically."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{FORMAT}\0{kind}\0{_canonical(params)}".encode())
    for name in sorted(inputs):
        a = np.ascontiguousarray(inputs[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.data)
    return h.hexdigest()


def shard_source_digest(manifest: Mapping[str, Any]) -> str:
    """Digest of a build-shards manifest's shard names, clip keys and sample config."""
    what = {"shards": manifest["shards"], "sample": manifest["sample"]}
    return hashlib.blake2b(_canonical(what).encode(), digest_size=16).hexdigest()


def write_cache(
    path: str | Path,
    kind: str,
    params: Mapping[str, Any],
    source: str,
    entries: Iterable[tuple[str, str, Mapping[str, np.ndarray]]],
) -> int:
    """Write ``(clip key, fingerprint, {name: array})`` entries to a new cache file (temp name,
    then rename, replacing any old file). Returns the number of clips written."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, kind=kind, params=_canonical(params), source=source)
        clips = f.create_group("clips")
        for key, digest, arrays in entries:
            group = clips.create_group(key)
            group.attrs["fingerprint"] = digest
            for name, array in arrays.items():
                group.create_dataset(name, data=np.asarray(array), **_storage(array))
            n += 1
    os.replace(tmp, path)
    return n


def _storage(array) -> dict:
    """gzip for masks and integers (sparse, ~70x smaller); float latents are stored raw: they
    gain ~10 % from gzip and cost ~20x more to read."""
    if np.asarray(array).dtype.kind in "biu":
        return {"compression": "gzip", "compression_opts": 1}
    return {}


class ClipCacheReader:
    """Read one kind's cache for one shard build and one set of params (checked at open)."""

    def __init__(
        self,
        path: str | Path,
        kind: str,
        params: Mapping[str, Any],
        source: str,
        keys: Iterable[str],
        rebuild_hint: str,
    ) -> None:
        self.path, self.kind, self.params = Path(path), kind, dict(params)
        self.rebuild_hint = rebuild_hint
        self._file_pid: tuple[Any, int] | None = None
        self._checked: set[str] = set()
        if not self.path.is_file():
            raise StaleCacheError(f"{self.path}: no {kind} cache; {rebuild_hint}")
        self._check_header(source, set(keys))

    def _stale(self, why: str) -> StaleCacheError:
        return StaleCacheError(f"{self.path}: stale {self.kind} cache: {why}; {self.rebuild_hint}")

    def _check_header(self, source: str, keys: set[str]) -> None:
        f = self._file()
        if f.attrs.get("format") != FORMAT or f.attrs.get("kind") != self.kind:
            raise self._stale(f"format/kind {f.attrs.get('format')}/{f.attrs.get('kind')}")
        stored = json.loads(f.attrs["params"])
        if stored != json.loads(_canonical(self.params)):
            raise self._stale(f"built with {stored}, this run needs {self.params}")
        if f.attrs["source"] != source:
            raise self._stale("built for another shard build (shards, clip keys or sample config)")
        missing = sorted(keys - set(f["clips"].keys()))
        if missing:
            raise self._stale(f"{len(missing)} clips missing (e.g. {missing[:3]})")

    def _file(self):
        """The open file of this process (reopened after a fork)."""
        import h5py

        if self._file_pid is None or self._file_pid[1] != os.getpid():
            self._file_pid = (h5py.File(self.path, "r"), os.getpid())
        return self._file_pid[0]

    def read(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The arrays cached for clip ``key``. ``inputs`` (the clip's input arrays) are
        fingerprinted and compared on the first read of ``key`` in this process."""
        group = self._file()["clips"].get(key)
        if group is None:
            raise self._stale(f"no entry for clip {key!r}")
        if key not in self._checked:
            if fingerprint(self.kind, self.params, inputs) != group.attrs["fingerprint"]:
                raise self._stale(f"clip {key!r} changed since the cache was written")
            self._checked.add(key)
        return {name: group[name][()] for name in group}

    def close(self) -> None:
        if self._file_pid is not None and self._file_pid[1] == os.getpid():
            self._file_pid[0].close()
        self._file_pid = None
