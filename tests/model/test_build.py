"""The model class builds from its config alone; weights come from the weights layer
(`weights.build`), and the model folder is found the way `predict` finds it (issue 16)."""

from __future__ import annotations

import pytest
import torch
from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.modeling.model import Ross3DForCausalLM, Ross3DHFConfig
from ross3d_model.weights.build import from_config
from ross3d_model.weights.loading import meta_skeleton
from ross3d_model.weights.model_folder import EXPORT_DIR, TOKENIZER_DIR, find_model_folder


def _with_pretrained(cfg: Ross3DConfig, where: str) -> Ross3DConfig:
    data = cfg.to_dict()
    data["vision"]["pretrained"] = where
    data["llm"]["pretrained"] = where
    return Ross3DConfig.from_dict(data)


def test_model_class_reads_no_checkpoint(tiny_cfg, tmp_path):
    """Pretrained parts named by the config are the weights layer's job: the class builds
    their shapes (random init) and never opens the path."""
    absent = str(tmp_path / "never-read")
    config = Ross3DHFConfig(ross3d=_with_pretrained(tiny_cfg, absent).to_dict())
    model = Ross3DForCausalLM(config)
    assert not any(p.is_meta for p in model.parameters())
    assert model.latent_tokenizer is not None and model.reconstructor is not None
    with pytest.raises(ValueError, match="never-read"):  # the weights layer does open it
        from_config(_with_pretrained(tiny_cfg, absent))


def test_inference_build_has_no_vae_and_no_denoiser(tiny_cfg):
    model = Ross3DForCausalLM(Ross3DHFConfig(ross3d=tiny_cfg.to_dict()), inference=True)
    assert model.latent_tokenizer is None and model.reconstructor is None
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert not names & {"latent_tokenizer", "reconstructor"}


def test_meta_skeleton_allocates_no_parameter_and_keeps_the_rng(tiny_cfg):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    skeleton = meta_skeleton(Ross3DForCausalLM, Ross3DHFConfig(ross3d=tiny_cfg.to_dict()), False)
    assert torch.equal(torch.rand(3), expected)
    assert all(p.is_meta for p in skeleton.parameters())


def test_transformers_loader_is_refused_with_the_right_entry_point(tmp_path):
    with pytest.raises(TypeError, match=r"weights\.build\.from_pretrained"):
        Ross3DForCausalLM.from_pretrained(tmp_path)


def test_model_folder_is_found_in_a_training_output_dir(tmp_path):
    folder = tmp_path / EXPORT_DIR
    (folder / TOKENIZER_DIR).mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert find_model_folder(tmp_path) == folder
    assert find_model_folder(folder) == folder


def test_model_folder_errors_name_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=r"no exported model \(config.json\) here or in model/"):
        find_model_folder(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no tokenizer/ folder next to the weights"):
        find_model_folder(tmp_path)
