"""nn.Modules only: the Ross3D LMM and its parts (vision tower + projector, 3D position
encoding, grounding head, masking, the DiT denoiser and reconstruction losses, the frozen VAE)
and the objective that combines their losses.
"""
