"""Where each pretrained part of a model config comes from and whether it can be loaded, found
without downloading anything and without waiting on a hub that cannot answer
(`ross3d-model check-init`).

- `HubAccess.detect()`: decided once per check: offline when `HF_HUB_OFFLINE` is set, or when
  the hub's host does not accept a connection within a few seconds (then no hub call is made
  at all: no retries, no timeouts per part); whether a token is configured.
- `open_part(...)`: the checkpoint of one part: a local file or folder (a local path is never
  sent to the hub as a repo id), a snapshot already in the hub cache, or (online) a hub repo
  read from its safetensors headers; else `Unavailable` carrying the part's status.
- `PartStatus`: one row of the check-init table.

Statuses: `found`; `not set` (random init), `provided by init_from`, `not used for inference`
(nothing to load); `missing` (no such repo or no weights in it), `unreachable` (offline or a
network error), `needs a token` (gated or private repo), `local file absent`, `does not fit`
(found, but tensors are missing, unexpected or of another shape). The last five are not
loadable: check-init exits 1.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from ross3d_model.weights.checkpoint import is_local_source
from ross3d_model.weights.loading import Checkpoint, RemoteCheckpoint

FOUND = "found"
NOT_SET = "not set"
MISSING = "missing"
UNREACHABLE = "unreachable"
NEEDS_TOKEN = "needs a token"
LOCAL_ABSENT = "local file absent"
DOES_NOT_FIT = "does not fit"
NOT_LOADABLE = (MISSING, UNREACHABLE, NEEDS_TOKEN, LOCAL_ABSENT, DOES_NOT_FIT)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
PROBE_TIMEOUT_S = 3.0


@dataclass
class PartStatus:
    """One pretrained part: the config field naming it, its source as written, its status,
    where it was found (`local`, `hub cache`, `hub`; '' when not found) and why."""

    part: str
    source: str | None
    status: str
    where: str = ""
    detail: str = ""
    tensors: int = 0

    @property
    def loadable(self) -> bool:
        return self.status not in NOT_LOADABLE

    def to_json(self) -> dict:
        return {**asdict(self), "loadable": self.loadable}


class Unavailable(ValueError):
    """A part that cannot be opened; `status` is one of NOT_LOADABLE."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HubAccess:
    """Whether the hub is to be asked at all (`online`), why not (`reason`), and whether a
    token is configured."""

    online: bool
    reason: str = ""
    token: bool = False

    @classmethod
    def detect(cls, timeout_s: float = PROBE_TIMEOUT_S) -> HubAccess:
        """Decide once: `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) set -> offline without
        any network access; else one TCP connection to the hub's host (or to the HTTPS proxy
        when one is set), bounded by `timeout_s` (name resolution included)."""
        from huggingface_hub import constants, get_token

        token = get_token() is not None
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
                return cls(False, f"{name} is set", token)
        if constants.HF_HUB_OFFLINE:
            return cls(False, "HF_HUB_OFFLINE is set", token)
        url = urlparse(_proxy() or constants.ENDPOINT)
        port = url.port or (443 if url.scheme == "https" else 80)
        error = _probe(url.hostname or "", port, timeout_s)
        if error:
            return cls(False, f"cannot reach {url.hostname}: {error}", token)
        return cls(True, "", token)


def _proxy() -> str | None:
    """The HTTPS proxy the hub client would use (then the probe connects to it instead)."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def _probe(host: str, port: int, timeout_s: float) -> str:
    """'' when `host:port` accepts a TCP connection within `timeout_s`, else why not. Run in a
    daemon thread: name resolution has no timeout of its own."""
    outcome: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append("")
        except OSError as err:
            outcome.append(str(err) or type(err).__name__)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"no answer within {timeout_s:g} s"


def open_part(
    source: str, subfolder: str | None, hub: HubAccess
) -> tuple[Checkpoint, str, Path | None]:
    """(checkpoint, where, local folder or None) of a weights source: a local path as is, else
    a hub snapshot already cached, else (online) the hub repo's safetensors headers. Raises
    `Unavailable` with the part's status."""
    if is_local_source(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise Unavailable(LOCAL_ABSENT, _absent(path))
        folder = path / subfolder if subfolder is not None and path.is_dir() else path
        return _local_checkpoint(folder), "local", path
    cached = _cached_snapshot(source)
    if cached is not None:
        folder = cached / subfolder if subfolder is not None else cached
        if any(folder.glob("*.safetensors")):
            return _local_checkpoint(folder), "hub cache", cached
    _require_online(source, hub)
    return _hub_call(source, hub, lambda: RemoteCheckpoint(source, subfolder)), "hub", None


def find_tokenizer(source: str, hub: HubAccess) -> str:
    """Where the tokenizer files of `source` are (`local`, `hub cache`, `hub`), else raises
    `Unavailable`."""
    if is_local_source(source):
        path = Path(source).expanduser()
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise Unavailable(LOCAL_ABSENT, _absent(path, f"no {' or '.join(TOKENIZER_FILES)} in"))
        return "local"
    cached = _cached_snapshot(source)
    if cached is not None and any((cached / name).is_file() for name in TOKENIZER_FILES):
        return "hub cache"
    _require_online(source, hub)
    from huggingface_hub import HfApi

    files = _hub_call(source, hub, lambda: HfApi().list_repo_files(source))
    if not any(name in files for name in TOKENIZER_FILES):
        raise Unavailable(MISSING, f"{source}: no {' or '.join(TOKENIZER_FILES)} in the repo")
    return "hub"


def _local_checkpoint(folder: Path) -> Checkpoint:
    try:
        return Checkpoint(folder)
    except ValueError as err:  # no weights there, a missing shard, an unreadable file
        raise Unavailable(MISSING, str(err)) from None


def _absent(path: Path, what: str = "no such file or folder:") -> str:
    where = "" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})"
    return f"{what} {path}{where}"


def _cached_snapshot(repo_id: str) -> Path | None:
    """The hub cache's snapshot folder of `repo_id` at `main` (the cache layout
    `models--org--name/refs/main` -> `snapshots/<commit>/`), None when there is none; no
    network access."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if not ref.is_file():
        return None
    folder = repo / "snapshots" / ref.read_text().strip()
    return folder if folder.is_dir() else None


def _require_online(repo_id: str, hub: HubAccess) -> None:
    if not hub.online:
        raise Unavailable(UNREACHABLE, f"not in the hub cache, and offline ({hub.reason})")


def _hub_call(repo_id: str, hub: HubAccess, call: Callable):
    """`call()`, its hub errors turned into `Unavailable` with the matching status."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    login = "log in with `hf auth login` (or set HF_TOKEN)"
    try:
        return call()
    except GatedRepoError:
        raise Unavailable(
            NEEDS_TOKEN,
            f"{repo_id}: gated: accept its licence on the hub page, then {login}"
            if not hub.token
            else f"{repo_id}: gated: accept its licence on the hub page (your token has no access)",
        ) from None
    except RepositoryNotFoundError:
        if hub.token:
            raise Unavailable(MISSING, f"{repo_id}: no such hub repo") from None
        raise Unavailable(
            NEEDS_TOKEN, f"{repo_id}: no such public repo (private? {login})"
        ) from None
    except (EntryNotFoundError, HFValidationError) as err:
        raise Unavailable(MISSING, f"{repo_id}: {err}") from None
    except HfHubHTTPError as err:
        code = getattr(err.response, "status_code", None)
        status = NEEDS_TOKEN if code in (401, 403) else UNREACHABLE
        raise Unavailable(status, f"{repo_id}: {str(err).splitlines()[0]}") from None
    except ValueError as err:  # RemoteCheckpoint: no safetensors files under the subfolder
        raise Unavailable(MISSING, str(err)) from None
    except Exception as err:  # the HTTP client's connection errors have many types
        raise Unavailable(UNREACHABLE, f"{repo_id}: {type(err).__name__}: {err}") from None
