"""The distributed wrappers of the training loop: plain (one process, or torch DDP under
torchrun) and DeepSpeed ZeRO-2/3 driven through `deepspeed.initialize` directly.

Rank and world size come from torch.distributed (set up from torchrun's variables), never from
accelerate, which reports one process for CPU + DeepSpeed under torchrun. The model is built by
the caller before an engine exists, so no pretrained part is loaded under ZeRO-3's `zero.Init`
(which would hand back partitioned, shape-(0,) weights).

Checkpoint folders (written by every rank, collectively):
- plain: `model.pt`, `optimizer.pt`, `scheduler.pt` (rank 0);
- DeepSpeed: `ds/` as `engine.save_checkpoint` writes it (per-rank optimiser shards).
`read_model_state(folder)` returns the full fp32 model state dict of either, offline.
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import torch
import torch.distributed as dist

from ross3d_model.training.ranks import join_process_group
from ross3d_model.training.ranks import world_size_from_env as world_size_from_env

DS_TAG = "ds"
MODEL_FILE, OPTIMIZER_FILE, SCHEDULER_FILE = "model.pt", "optimizer.pt", "scheduler.pt"


def _cosine(tcfg):
    from transformers import get_cosine_schedule_with_warmup

    return lambda optimizer: get_cosine_schedule_with_warmup(
        optimizer, tcfg.warmup_steps, tcfg.max_steps
    )


class Engine:
    """What the loop calls; one optimiser step = grad_accum x (forward, backward) then step()."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module = module
        self.device = device
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        # host-side flags and counters go over gloo: beside nccl, a group of its own (collective)
        nccl = dist.is_initialized() and dist.get_backend() != "gloo"
        self._gloo = dist.new_group(backend="gloo") if nccl and self.world_size > 1 else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor, cpu: bool = False) -> torch.Tensor:
        """In place; cpu=True for a host tensor (a gloo group beside nccl: no device sync)."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._gloo if cpu else None)
        return tensor

    def any_rank(self, flag: bool) -> bool:
        """True when `flag` holds on any process (a host-side all-reduce)."""
        return self.any_rank_each(flag)[0]

    def any_rank_each(self, *flags: bool) -> list[bool]:
        """For each flag: True when it holds on any process (one host-side all-reduce)."""
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        return [bool(v) for v in self.all_reduce_sum(tensor, cpu=True)]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


class PlainEngine(Engine):
    """torch AdamW + cosine; DDP (gloo on CPU, nccl on CUDA) when WORLD_SIZE > 1. Gradients of
    non-final micro-batches stay local (no_sync); loss / grad_accum, so the update sees the mean
    over all micro-batches of all processes."""

    def __init__(self, run, model: torch.nn.Module, device: torch.device) -> None:
        tcfg = run.train
        self.accum, self.tcfg = tcfg.grad_accum, tcfg
        model.to(device)
        wrapped = model
        if dist.is_initialized() and dist.get_world_size() > 1:
            ids = [device.index] if device.type == "cuda" else None
            # Every trainable parameter is used on every micro-batch (the one-graph contract).
            wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        super().__init__(model, device)
        self.wrapped = wrapped
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=tcfg.lr, betas=tcfg.adam_betas, eps=tcfg.adam_eps,
            weight_decay=tcfg.weight_decay,
        )  # fmt: skip
        self.scheduler = _cosine(tcfg)(self.optimizer)
        self.micro = 0
        self.last_grad_norm = torch.zeros(())

    @property
    def model(self) -> torch.nn.Module:
        return self.wrapped

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def autocast(self):
        if not self.tcfg.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def sync_context(self):
        """No gradient all-reduce except on the last micro-batch of a step."""
        last = (self.micro + 1) % self.accum == 0
        if last or self.wrapped is self.module:
            return contextlib.nullcontext()
        return self.wrapped.no_sync()

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.accum).backward()

    def step(self) -> None:
        """Called after every micro-batch; updates on the last one of an optimiser step."""
        self.micro += 1
        if self.micro % self.accum:
            return
        self.last_grad_norm = torch.nn.utils.clip_grad_norm_(
            self.module.parameters(), self.tcfg.max_grad_norm
        )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def save(self, path: Path) -> None:
        if self.is_main:
            path.mkdir(parents=True, exist_ok=True)
            torch.save(self.module.state_dict(), path / MODEL_FILE)
            torch.save(self.optimizer.state_dict(), path / OPTIMIZER_FILE)
            torch.save(self.scheduler.state_dict(), path / SCHEDULER_FILE)
        self.barrier()

    def load(self, path: Path) -> None:
        state = torch.load(path / MODEL_FILE, map_location=self.device, weights_only=True)
        self.module.load_state_dict(state)
        optim = torch.load(path / OPTIMIZER_FILE, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(optim)
        self.scheduler.load_state_dict(torch.load(path / SCHEDULER_FILE, weights_only=True))

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()


class DeepSpeedEngine(Engine):
    """`deepspeed.initialize` on the already-built model; DeepSpeed builds AdamW from the config,
    steps the run's cosine schedule once per optimiser step, clips and scales by 1/grad_accum."""

    def __init__(self, run, model: torch.nn.Module, device: torch.device, ds_config: dict) -> None:
        import deepspeed

        params = [p for p in model.parameters() if p.requires_grad]
        engine, _, _, scheduler = deepspeed.initialize(
            model=model, model_parameters=params, config=copy.deepcopy(ds_config),
            lr_scheduler=_cosine(run.train),
        )  # fmt: skip
        super().__init__(model, device)
        self.engine, self.scheduler = engine, scheduler
        self.stage = int(ds_config["zero_optimization"]["stage"])
        if self.stage == 3:
            _keep_frozen_whole(model, engine.optimizer.persistent_parameters)
            _unhook_frozen(model, engine.optimizer.parameter_offload)

    @property
    def model(self):
        return self.engine

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def autocast(self):
        return contextlib.nullcontext()  # DeepSpeed's bf16 keeps the weights in bf16

    def sync_context(self):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def step(self) -> None:
        self.engine.step()

    @property
    def last_grad_norm(self):
        """Global gradient norm before clipping of the last update (tensor or float)."""
        norm = self.engine.get_global_grad_norm()
        return 0.0 if norm is None else norm

    def save(self, path: Path) -> None:
        self.engine.save_checkpoint(str(path), tag=DS_TAG, save_latest=False)
        self.barrier()

    def load(self, path: Path) -> None:
        loaded, _ = self.engine.load_checkpoint(
            str(path), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if loaded is None:
            raise ValueError(f"{path}: DeepSpeed could not load the checkpoint")

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Collective under ZeRO-3 (every rank must call it); the full dict on rank 0."""
        if self.stage == 3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        return self.module.state_dict()


def _keep_frozen_whole(model: torch.nn.Module, persistent: list) -> None:
    """ZeRO-3 all-gathers a partitioned parameter at each call of its module, a collective, so
    every rank must call the same partitioned modules in the same order. The frozen parts
    (SigLIP, the VAE) run only for some samples (the VAE: BEV / cross-view targets): make them
    persistent, like ZeRO-3's own small parameters (`persistent`, its list, which it gathers
    again, for all ranks alike, after every optimiser step). They have no gradient or
    optimiser state: this costs their size per rank and one gather per step."""
    frozen = [p for p in model.parameters() if hasattr(p, "ds_id") and not p.requires_grad]
    known = {id(p) for p in persistent}
    for param in frozen:
        param.ds_persist = True
        if id(param) not in known:
            persistent.append(param)
    if frozen:
        frozen[0].all_gather(param_list=frozen)


def _unhook_frozen(model: torch.nn.Module, offload) -> None:
    """Remove ZeRO-3's module hooks from the frozen parts (whole, persistent: nothing to fetch).
    ZeRO-3 records the order of hooked module calls once and then prefetches (all-gathers) by
    that trace, per rank; a module that runs only for some samples (the VAE: BEV / cross-view
    targets) would make a rank whose samples differ from its recorded step drop its trace while
    the others prefetch, so the ranks' all-gathers no longer match (gloo: collective mismatch).
    Without hooks the trace holds only the trainable modules, called alike on every rank (the
    one-graph forward)."""
    hook_dicts = set()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            for part in module.modules():
                hook_dicts.update({id(part._forward_pre_hooks), id(part._forward_hooks)})
    for handle in [*offload.forward_hooks, *offload.backward_hooks]:
        if id(handle.hooks_dict_ref()) in hook_dicts:
            handle.remove()


def make_engine(run, model: torch.nn.Module, hidden_size: int) -> Engine:
    """Joins (or starts) the process group torchrun describes (`ranks.join_process_group`;
    the trainer has joined it before building the model), then wraps the built model."""
    from ross3d_model.configuration.run import load_deepspeed_config

    tcfg = run.train
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else None
    device = device or torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        if tcfg.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    join_process_group(tcfg.collective_timeout_s, tcfg.deepspeed is not None)
    if tcfg.deepspeed is None:
        return PlainEngine(run, model, device)
    world = dist.get_world_size()
    ds = resolve_deepspeed_config(load_deepspeed_config(tcfg.deepspeed), run, world, hidden_size)
    return DeepSpeedEngine(run, model, device, ds)


def read_model_state(folder: Path) -> dict[str, torch.Tensor]:
    """Full model state dict (fp32 for DeepSpeed: its master weights) of a checkpoint folder,
    on CPU, no process group needed."""
    folder = Path(folder)
    if (folder / DS_TAG).is_dir():
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=DS_TAG)
    if (folder / MODEL_FILE).is_file():
        return torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True, mmap=True)
    raise ValueError(
        f"{folder}: neither a DeepSpeed ({DS_TAG}/) nor a plain ({MODEL_FILE}) checkpoint"
    )


def resolve_deepspeed_config(ds: dict, run, world_size: int, hidden_size: int) -> dict:
    """Replace every "auto" of a DeepSpeed config with the run's values (so nothing depends on
    accelerate guessing them from a dataloader or model.config). ValueError on a value that
    contradicts the run config (`configuration.run.check_deepspeed_config`)."""
    from ross3d_model.configuration.run import check_deepspeed_config, deepspeed_run_values

    tcfg = run.train
    check_deepspeed_config(ds, tcfg, world_size)
    ds = copy.deepcopy(ds)
    values = {
        **{k: v for k, (_, v) in deepspeed_run_values(tcfg, world_size).items()},
        "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
        "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
    }
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = ds
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        if node[leaf] == "auto":
            node[leaf] = value
    if "scheduler" in ds:
        raise ValueError("DeepSpeed config must not define a scheduler: the run's cosine is used")
    if "optimizer" not in ds:
        raise ValueError("DeepSpeed config must define the AdamW optimizer (with torch_adam)")
    leftover = _autos(ds)
    if leftover:
        raise ValueError(f"DeepSpeed config has 'auto' values the trainer cannot fill: {leftover}")
    return ds


def _autos(node, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [a for k, v in node.items() for a in _autos(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if node == "auto" else []
