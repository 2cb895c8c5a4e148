"""ross3d-eval: exact scoring of ScanQA, SQA3D, Scan2Cap, ScanRefer and Multi3DRefer.

Never imports torch. `score(benchmark, predictions, annotations, ...) -> Result`.
"""

from ross3d_eval.errors import EvalInputError, JavaNotFoundError
from ross3d_eval.harness import score
from ross3d_eval.result import BENCHMARKS, PROTOCOLS, SUPPORTED_PROTOCOLS, Result

__version__ = "0.1.0"

__all__ = [
    "BENCHMARKS",
    "PROTOCOLS",
    "SUPPORTED_PROTOCOLS",
    "EvalInputError",
    "JavaNotFoundError",
    "Result",
    "score",
]
