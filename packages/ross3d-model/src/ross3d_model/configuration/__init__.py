"""Every config dataclass of the model and of a training run, and the shipped JSON configs.
Imports no torch: loading a config is instant.
"""
