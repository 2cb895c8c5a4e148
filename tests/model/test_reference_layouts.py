"""Loading the public checkpoint layouts: LLaVA-Video 7B, the released Ross3D model and the ROSS
2D denoiser, at tiny sizes. The checkpoints are written from key lists and shapes read off the
public code (reference_fixtures.py cites file and line), never from our modules; the tests
check `check-init` and that each value lands where the reference loader puts it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from reference_fixtures import (
    llava_video_keys,
    random_state,
    released_ross3d_keys,
    ross2d_denoiser_keys,
    write_safetensors,
)
from ross3d_model.cli import app
from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.weights.build import from_config, from_pretrained
from typer.testing import CliRunner

DEN = "reconstructor.denoiser."
NET = "model.mm_inv_projector.net."


def _cfg(tiny_cfg, **sections) -> Ross3DConfig:
    data = tiny_cfg.to_dict()
    for section, values in sections.items():
        if isinstance(values, dict):
            data[section].update(values)
        else:
            data[section] = values
    return Ross3DConfig.from_dict(data)


def _check_init(cfg: Ross3DConfig, tmp_path) -> tuple[int, dict]:
    path = tmp_path / "model_config.json"
    cfg.save(path)
    result = CliRunner().invoke(app, ["check-init", str(path), "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def released(tiny_cfg, tmp_path):
    """A released-layout Ross3D checkpoint (vocab 514 = 512 + `<ground>`, `<coord>`)."""
    cfg = _cfg(tiny_cfg, llm={"vocab_size": 514, "added_token_rows": 2})
    state = random_state(released_ross3d_keys(cfg), seed=3)
    folder = write_safetensors(state, tmp_path / "ross3d")
    return _cfg(tiny_cfg, llm=cfg.llm.__dict__, init_from=str(folder)), state


def test_released_layout_passes_check_init(released, tmp_path):
    cfg, state = released
    code, report = _check_init(cfg, tmp_path)
    assert code == 0, report
    assert (report["missing"], report["unexpected"], report["mismatched"]) == ([], [], [])
    # every tensor but the three qkv (one key -> three tensors) lands somewhere exactly once
    depth = cfg.reconstruction.depth
    assert report["loaded"] == {"init_from": len(state) + 2 * 2 * depth}


def test_released_values_land_where_the_reference_puts_them(released):
    cfg, state = released
    model = from_config(cfg)
    ours = model.state_dict()
    w = cfg.reconstruction.width
    for p in ("weight", "bias"):  # timm Attention: qkv(x).reshape(B, N, 3, H, d) -> q, k, v rows
        fused = state[f"{NET}blocks.1.attn.qkv.{p}"]
        for i, name in enumerate(("to_q", "to_k", "to_v")):
            assert torch.equal(ours[f"{DEN}blocks.1.attn.{name}.{p}"], fused[i * w : (i + 1) * w])
    conv = state[f"{NET}x_embedder_view.proj.weight"]
    assert torch.equal(ours[f"{DEN}branches.view.x_embedder.weight"], conv[:, :, 0, 0])
    assert torch.equal(ours[f"{DEN}branches.bev.pos_embed"], state[f"{NET}pos_embed_bev"][0])
    assert torch.equal(
        ours[f"{DEN}branches.view.pooling.queries"], state[f"{NET}z_embedder_view.cls_token"][0]
    )
    pairs = {
        f"{NET}z_embedder_bev.linear.weight": f"{DEN}branches.bev.pooling.out.weight",
        f"{NET}z_embedder_bev.proj.1.weight": f"{DEN}branches.bev.pooling.proj.1.weight",
        f"{NET}blocks.0.mlp.fc1.weight": f"{DEN}blocks.0.mlp.net.0.proj.weight",
        f"{NET}blocks.0.mlp.fc2.bias": f"{DEN}blocks.0.mlp.net.2.bias",
        f"{NET}blocks.0.attn.proj.weight": f"{DEN}blocks.0.attn.to_out.0.weight",
        f"{NET}t_embedder.mlp.2.weight": f"{DEN}t_embedder.linear_2.weight",
        "ground_head_obj.3.weight": "ground_head.obj.3.weight",
        "ground_head_query.2.bias": "ground_head.query.2.bias",
        "ground_head_zero_target": "ground_head.zero_target",
        "model.mask_token": "mask_token",
        "model.image_newline": "image_newline",
        "model.embed_tokens.weight": "language_model.model.embed_tokens.weight",
        "model.vision_tower.vision_tower.vision_model.encoder.layers.1.mlp.fc1.bias": (
            "vision_tower.encoder.layers.1.mlp.fc1.bias"
        ),
    }
    for theirs, name in pairs.items():
        assert torch.equal(ours[name], state[theirs]), name


def test_released_layout_is_strict(released, tmp_path):
    cfg, state = released
    folder = tmp_path / "broken"
    broken = dict(state)
    del broken["model.mask_token"]
    broken["model.vision_resampler.extra"] = torch.zeros(2)
    broken[f"{NET}blocks.0.mlp.fc2.weight"] = torch.zeros(3, 3)
    write_safetensors(broken, folder)
    cfg = _cfg(cfg, init_from=str(folder))
    code, report = _check_init(cfg, tmp_path)
    assert code == 1
    assert report["missing"] == ["init_from: mask_token"]
    assert len(report["unexpected"]) == 1
    assert report["unexpected"][0].startswith("init_from: model.vision_resampler.extra")
    assert len(report["mismatched"]) == 1 and "blocks.0.mlp.fc2.weight" in report["mismatched"][0]
    with pytest.raises(ValueError, match=r"missing \['init_from: mask_token'\]"):
        from_config(cfg)


def test_llava_video_rows_resized_with_the_mean_as_add_tokens(tiny_cfg, tmp_path):
    """LLaVA-Video has 512 rows here (152,064 at 7B), the model 514 (151,649): the first 512 are
    kept, the two new input and output rows are the mean of those (train_3d.py 366-374)."""
    state = random_state(llava_video_keys(tiny_cfg, vocab_rows=512), seed=4)
    folder = write_safetensors(state, tmp_path / "llava")
    cfg = _cfg(tiny_cfg, llm={"vocab_size": 514, "added_token_rows": 2}, init_from=str(folder))
    code, report = _check_init(cfg, tmp_path)
    assert code == 0 and report["loaded"] == {"init_from": len(state)}, report
    model = from_config(cfg)
    for theirs, ours in (
        ("model.embed_tokens.weight", model.language_model.model.embed_tokens.weight),
        ("lm_head.weight", model.language_model.lm_head.weight),
    ):
        rows = state[theirs]
        assert ours.shape == (514, 64) and torch.equal(ours[:512], rows)
        mean = rows.sum(dim=0) / 512
        torch.testing.assert_close(ours[512], mean)
        torch.testing.assert_close(ours[513], mean)
    shrunk = _cfg(cfg, llm={"vocab_size": 514, "added_token_rows": 0})
    code, report = _check_init(shrunk, tmp_path)
    assert code == 1 and len(report["mismatched"]) == 2


def test_llava_video_build_is_lean(tiny_cfg, tmp_path, monkeypatch):
    """Parts the checkpoint provides are built only as meta skeletons (no random copy)."""
    import ross3d_model.modeling.model as modeling

    state = random_state(llava_video_keys(tiny_cfg, vocab_rows=512), seed=5)
    cfg = _cfg(tiny_cfg, init_from=str(write_safetensors(state, tmp_path / "llava")))
    built = []
    real_build_llm = modeling.build_llm

    def recording(llm_cfg):
        llm = real_build_llm(llm_cfg)
        built.append(next(llm.parameters()).device.type)
        return llm

    monkeypatch.setattr(modeling, "build_llm", recording)
    model = from_config(cfg, dtype=torch.bfloat16)
    assert built == ["meta"]
    assert model.language_model.lm_head.weight.dtype == torch.bfloat16
    assert model.mask_token.dtype == torch.bfloat16 and not model.mask_token.is_meta
    assert not any(p.requires_grad for p in model.vision_tower.parameters())


def _bilinear(table_ssW: torch.Tensor, out: int) -> torch.Tensor:
    """Hand-written bilinear resize, align_corners=False (source x = (i + 0.5) * s / out - 0.5,
    clamped at 0; neighbours floor(x) and min(floor(x) + 1, s - 1))."""
    s = table_ssW.shape[0]

    def taps(i):
        x = max((i + 0.5) * s / out - 0.5, 0.0)
        lo = math.floor(x)
        return lo, min(lo + 1, s - 1), x - lo

    result = torch.zeros(out, out, table_ssW.shape[-1], dtype=torch.float64)
    t = table_ssW.double()
    for r in range(out):
        r0, r1, fr = taps(r)
        for c in range(out):
            c0, c1, fc = taps(c)
            top = (1 - fc) * t[r0, c0] + fc * t[r0, c1]
            bottom = (1 - fc) * t[r1, c0] + fc * t[r1, c1]
            result[r, c] = (1 - fr) * top + fr * bottom
    return result.reshape(out * out, -1)


def test_ross2d_denoiser_mapped_as_the_reference_loader(tiny_cfg, tmp_path):
    """ross3d_arch.py 213-263: pos_embed bilinear to 14x14 (view) and copied at 27x27 (bev),
    x_embedder copied to both branches, z_embedder dropped by the rename, the rest as is."""
    state = random_state(ross2d_denoiser_keys(tiny_cfg, grid=27), seed=6)
    path = tmp_path / "mm_inv_projector.bin"
    torch.save(state, path)
    cfg = _cfg(
        tiny_cfg, reconstruction={"pretrained_denoiser": str(path), "denoiser_init": "reference"}
    )
    code, report = _check_init(cfg, tmp_path)
    assert code == 0, report
    assert report["ignored"] == {
        "reconstruction.pretrained_denoiser: z_embedder "
        "(the reference's copy lands on names it lacks)": 2
    }
    model = from_config(cfg)
    ours = model.state_dict()
    table = state[f"{NET}pos_embed"][0]
    view = ours[f"{DEN}branches.view.pos_embed"]
    # float32 kernel vs float64 hand computation: agree to 1e-5 (align_corners=True or an
    # antialiased resize would differ by ~1e-1)
    torch.testing.assert_close(
        view, _bilinear(table.view(27, 27, -1), 14).float(), atol=1e-5, rtol=0
    )
    assert torch.equal(ours[f"{DEN}branches.bev.pos_embed"], table)
    for branch in ("view", "bev"):
        conv = state[f"{NET}x_embedder.proj.weight"][:, :, 0, 0]
        assert torch.equal(ours[f"{DEN}branches.{branch}.x_embedder.weight"], conv)
    w = cfg.reconstruction.width
    assert torch.equal(
        ours[f"{DEN}blocks.0.attn.to_v.weight"], state[f"{NET}blocks.0.attn.qkv.weight"][2 * w :]
    )
    # no adaLN-zero re-init after loading: the loaded modulation and final layer stand
    for name in ("blocks.1.adaLN_modulation.1.weight", "final_layer.linear.weight"):
        assert torch.equal(ours[DEN + name], state[NET + name])
    z = state[f"{NET}z_embedder.1.weight"]
    assert not torch.equal(ours[f"{DEN}branches.view.pooling.proj.1.weight"], z)


def test_released_layout_export_round_trip(released, tmp_path):
    """save_llava_checkpoint writes the released names and shapes (fused qkv, conv, [1,N,W])."""
    from ross3d_model.weights.checkpoint import read_state_dict
    from ross3d_model.weights.reference_layouts import save_llava_checkpoint

    cfg, state = released
    model = from_config(cfg)
    save_llava_checkpoint(model, tmp_path / "export")
    exported = read_state_dict(tmp_path / "export")
    assert set(exported) == set(state)
    for key, tensor in state.items():
        assert torch.equal(exported[key], tensor), key


def test_from_pretrained_inference_builds_no_vae_or_denoiser(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    model = from_pretrained(tmp_path, torch.bfloat16, inference=True)
    assert model.reconstructor is None and model.latent_tokenizer is None
    dropped = [
        k for k in tiny_model.state_dict() if k.startswith(("reconstructor.", "latent_tokenizer."))
    ]
    assert model.init_report.ignored == {"export: inference": len(dropped)}
    assert model.language_model.lm_head.weight.dtype == torch.bfloat16
    src = tiny_model.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, src[name].to(tensor.dtype)), name


def test_image_token_past_the_embedding_rows_is_never_embedded(
    tiny_model, tiny_cfg, tiny_tokenizer, mixed_examples
):
    """With the reference vocabulary `<image>` gets the id after the last embedding row."""
    from ross3d_model.inputs.batch import collate_examples

    batch = collate_examples(mixed_examples[:2], tiny_tokenizer, tiny_cfg, seed=0)
    masks = torch.zeros(2, 4, dtype=torch.bool)
    before = tiny_model.prepare_inputs(batch, masks).embeds
    ids = dict(tiny_model.special_ids)
    rows = tiny_cfg.llm.vocab_size
    moved = dict(
        batch, input_ids=batch["input_ids"].masked_fill(batch["input_ids"] == ids["image"], rows)
    )
    tiny_model.set_special_ids({**ids, "image": rows})
    try:
        torch.testing.assert_close(tiny_model.prepare_inputs(moved, masks).embeds, before)
        with pytest.raises(ValueError, match="exceed the vocab"):
            tiny_model.set_special_ids({**ids, "coord": rows})
    finally:
        tiny_model.set_special_ids(ids)


def test_7b_config_holds_the_reference_start():
    """The public recipe (train_ross3d.sh lines 22-23, train_3d.py 1663-1679): LLaVA-Video,
    the ROSS 2D denoiser with no re-init, 151,649 rows of which 2 added."""
    from ross3d_model.configuration.model import load_config

    cfg = load_config("7b")
    assert cfg.init_from == "lmms-lab/LLaVA-Video-7B-Qwen2"
    assert cfg.reconstruction.pretrained_denoiser == "checkpoints/mm_inv_projector.bin"
    assert cfg.reconstruction.denoiser_init == "reference"
    assert (cfg.llm.vocab_size, cfg.llm.added_token_rows) == (151649, 2)


def test_siglip_model_layout_and_diffusers_vae_folder(tiny_cfg, tmp_path):
    """`vision.pretrained` in the SiglipModel layout (google/siglip-so400m-patch14-384: a
    `vision_model.*` tower with one layer more than LLaVA keeps, a text tower, logit scale/bias)
    and `vae.pretrained` as a diffusers repo with a `vae` subfolder."""
    from diffusers import AutoencoderKL
    from reference_fixtures import siglip_keys

    keys = siglip_keys(tiny_cfg, "vision_model.", num_layers=3)
    keys |= {"vision_model.head.probe": (1, 1, 32), "text_model.embeddings.x": (4, 8)}
    keys |= {"logit_scale": (1,), "logit_bias": (1,)}
    state = random_state(keys, seed=8)
    tower = write_safetensors(state, tmp_path / "siglip")
    vae_cfg = tiny_cfg.vae
    AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=tuple(vae_cfg.tiny_block_out_channels),
        layers_per_block=1,
        latent_channels=vae_cfg.latent_channels,
        norm_num_groups=vae_cfg.tiny_norm_num_groups,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).save_pretrained(str(tmp_path / "vae_repo" / "vae"))
    vae_state = _single_file_state(tmp_path / "vae_repo" / "vae")
    cfg = _cfg(
        tiny_cfg,
        vision={"pretrained": str(tower)},
        vae={"pretrained": str(tmp_path / "vae_repo"), "subfolder": "vae"},
    )
    code, report = _check_init(cfg, tmp_path)
    assert code == 0, report
    assert report["ignored"] == {
        "vision.pretrained: SigLIP pooling head (unused)": 1,
        "vision.pretrained: SigLIP text tower": 3,
        "vision.pretrained: layers past vision.num_layers": 16,
    }
    model = from_config(cfg)
    ours = model.state_dict()
    for key, tensor in state.items():
        name = "vision_tower." + key.removeprefix("vision_model.")
        if name in ours:
            assert torch.equal(ours[name], tensor), key
    for key, tensor in vae_state.items():
        assert torch.equal(ours["latent_tokenizer.vae." + key], tensor), key
    assert not any(p.requires_grad for p in model.latent_tokenizer.parameters())


def _single_file_state(folder):
    from safetensors.torch import load_file

    return load_file(str(next(folder.glob("*.safetensors"))))


def test_check_init_inference_ignores_the_denoiser(released, tmp_path):
    cfg, state = released
    path = tmp_path / "model_config.json"
    cfg.save(path)
    result = CliRunner().invoke(app, ["check-init", str(path), "--json", "--inference"])
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    denoiser_keys = [k for k in state if k.startswith("model.mm_inv_projector.")]
    depth = cfg.reconstruction.depth
    assert report["ignored"] == {
        "init_from: not used for inference": len(denoiser_keys) + 4 * depth
    }
    model = from_config(cfg, inference=True)
    assert model.reconstructor is None and model.latent_tokenizer is None


def test_check_init_reads_hub_checkpoints_from_headers_only(released, tmp_path, monkeypatch):
    """A hub id is checked from its safetensors headers (HTTP range reads): the hub is faked
    here by a repo whose one file is the released fixture; any download is an error."""
    import huggingface_hub
    from huggingface_hub.utils import SafetensorsFileMetadata, TensorInfo
    from ross3d_model.weights.build import check_init

    cfg, state = released

    def list_repo_files(self, repo_id, **kwargs):
        assert repo_id == "org/ross3d"
        return ["README.md", "model.safetensors", "vae/diffusion_pytorch_model.safetensors"]

    def parse(repo_id, filename, **kwargs):
        assert filename == "model.safetensors"
        tensors = {
            k: TensorInfo(dtype="F32", shape=list(t.shape), data_offsets=(0, 0))
            for k, t in state.items()
        }
        return SafetensorsFileMetadata(metadata={}, tensors=tensors)

    def no_download(*args, **kwargs):
        raise AssertionError("check-init downloaded weights")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "parse_safetensors_file_metadata", parse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    from ross3d_model.weights.availability import HubAccess

    report = check_init(_cfg(cfg, init_from="org/ross3d"), hub=HubAccess(online=True))
    assert report.ok, report
    assert report.loaded == {"init_from": len(state) + 4 * cfg.reconstruction.depth}
