"""ross3d-model: the Ross3D reconstructive 3D-aware LMM.

Public entry points (import from the submodules; this package import stays light):
- `configuration.model.load_config(name_or_path) -> Ross3DConfig` (shipped: tiny, mid, 7b)
- `inputs.tokenizer.build_tokenizer(path_or_hub_id)`,
  `inputs.tokenizer.build_tiny_tokenizer(out_dir)`
- `inputs.batch.collate_examples(examples, tokenizer, cfg, train=True, seed=None)`
- `weights.build.from_config(cfg, *, dtype, device, inference)` /
  `weights.build.from_pretrained(folder, dtype=None, *, device, inference)` (lean: a meta
  skeleton, then the weights); `model(batch, cross_view=...)` ->
  `Ross3DOutput(loss, losses, logits, ground_logits, masked_views)`
- `weights.build.check_init(cfg)` (`ross3d-model check-init`): what would not load
- `inference.generation.predict(model, batch, tokenizer)` -> prediction records for
  `ross3d-eval score`
"""

__version__ = "0.1.0"
