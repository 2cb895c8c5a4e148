"""The Ross3D training task: shards -> (clip, instruction) items -> model batches -> named losses.

Items are read with webdataset in shard order on every process (no node/worker split: the
trainer's global micro-batch schedule splits the work, which keeps multi-process runs equal to
single-process ones), paired with the split's instructions, shuffled in a buffer seeded by
(seed, epoch), and decoded only when a micro-batch is collated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from ross3d_model.batch import collate_examples
from ross3d_model.config import Ross3DConfig
from ross3d_model.modeling import Ross3DForCausalLM
from ross3d_model.objective import cross_view_active
from ross3d_model.tokenizer import build_tiny_tokenizer, build_tokenizer, special_token_ids
from ross3d_model.training.config import DataConfig
from ross3d_model.training.data import shuffled

TOKENIZER_DIR = "tokenizer"


def load_tokenizer(cfg: Ross3DConfig):
    """The config's tokenizer, else the pretrained LLM's, else the built-in tiny one."""
    source = cfg.tokenizer or cfg.llm.pretrained
    return build_tokenizer(source) if source else build_tiny_tokenizer()


def raw_samples(urls: list[str]) -> Iterator[dict]:
    """Raw WebDataset samples of `urls` in order (no shuffling, no node/worker splitting),
    read exactly as the ross3d-data loader reads them."""
    import webdataset as wds

    yield from wds.WebDataset(
        urls, shardshuffle=False, nodesplitter=_all, workersplitter=_all, empty_check=False
    )


def _all(urls):
    """Every process and worker reads every shard (the trainer splits micro-batches)."""
    return urls


def pair_items(
    samples, index: dict[str, list[dict]], with_text: set[str], data: DataConfig
) -> Iterator[tuple[dict, dict | None]]:
    """(raw sample, instruction) per instruction of a clip's scene (filtered by data.tasks);
    (raw sample, None) for a clip whose scene has no instruction in any split (vision-only)."""
    for sample in samples:
        key = sample["__key__"]
        instructions = index.get(key, [])
        kept = [i for i in instructions if data.tasks is None or i["task"] in data.tasks]
        for instruction in kept:
            yield sample, instruction
        if not instructions and data.vision_only and key not in with_text:
            yield sample, None


class Ross3DTask:
    """`TrainTask` for Ross3DForCausalLM over build-shards output."""

    def __init__(
        self,
        model_cfg: Ross3DConfig,
        shards: str | Path,
        data: DataConfig,
        *,
        seed: int = 0,
        shuffle_buffer: int = 256,
        tokenizer=None,
    ):
        from ross3d_data.loader import resolve_source

        self.cfg = model_cfg
        self.data = data
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_cfg)
        self.hidden_size = model_cfg.llm.hidden_size
        self.urls, self.index, self.with_text = resolve_source(Path(shards), data.split, None)

    def build_model(self) -> Ross3DForCausalLM:
        model = Ross3DForCausalLM.from_config(self.cfg)
        model.set_special_ids(special_token_ids(self.tokenizer))
        return model

    def epoch_items(self, epoch: int) -> Iterator[tuple[dict, dict | None]]:
        pairs = pair_items(raw_samples(self.urls), self.index, self.with_text, self.data)
        return shuffled(pairs, self.shuffle_buffer, self.seed * 100_003 + epoch)

    def collate(self, items: list[tuple[dict, dict | None]], seed: int) -> dict:
        from ross3d_data.loader import clip_to_tensors

        examples = []
        for sample, instruction in items:
            example = clip_to_tensors(sample)
            example["instruction"] = instruction
            examples.append(example)
        return collate_examples(examples, self.tokenizer, self.cfg, train=True, seed=seed)

    def to_device(self, batch: dict, device: torch.device) -> dict:
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def losses(self, model, batch: dict, cross_view: bool) -> dict:
        return model(batch, cross_view=cross_view).losses

    def cross_view_active(self, step: int) -> bool:
        return cross_view_active(step, self.cfg.objective)

    def count_tokens(self, batch: dict) -> int:
        """Text tokens plus visual tokens (newlines included) of the micro-batch."""
        b, v = batch["images"].shape[:2]
        text = int(batch["attention_mask"].sum()) - b  # the <image> placeholders are replaced
        return text + b * v * self.cfg.tokens_per_frame

    def enable_gradient_checkpointing(self, model) -> None:
        # Non-reentrant: reentrant checkpointing breaks DDP's find_unused_parameters.
        model.gradient_checkpointing_enable({"use_reentrant": False})

    def export(self, model, state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
        """A folder `predict` reads: config.json + safetensors + tokenizer/."""
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir), state_dict=state_dict)
        self.tokenizer.save_pretrained(str(out_dir / TOKENIZER_DIR))


def train_from_config(
    run,
    output_dir: str | Path,
    *,
    shards: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
):
    """`ross3d-model train`: the Ross3D task over `shards` (else run.data.shards), trained by
    `training.trainer.train`. Returns its TrainResult."""
    from ross3d_model.config import load_config
    from ross3d_model.training.trainer import train

    source = shards if shards is not None else run.data.shards
    if source is None:
        raise ValueError("no shards: pass --shards DIR or set data.shards in the run config")
    if not Path(source).is_dir():
        raise ValueError(f"{source}: shard folder not found")
    task = Ross3DTask(
        load_config(run.model),
        source,
        run.data,
        seed=run.train.seed,
        shuffle_buffer=run.train.shuffle_buffer,
    )
    return train(run, task, output_dir, resume=resume, progress=progress)
