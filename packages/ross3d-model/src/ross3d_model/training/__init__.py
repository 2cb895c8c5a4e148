"""Training of Ross3D: run configs, the accelerate/DeepSpeed loop, metrics, checkpoints, plots.

Only `training.trainer` (the entry point) touches DeepSpeed and torch.distributed.
"""
