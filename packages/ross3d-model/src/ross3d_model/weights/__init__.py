"""Weights: lean (meta-device) loading from safetensors, the reference checkpoint layouts
(LLaVA-Video, released Ross3D, ROSS denoiser) and the model-folder format.
"""
