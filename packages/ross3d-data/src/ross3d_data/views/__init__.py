"""Per-view work: choosing views by coverage (`selection`), their overlap matrix (`overlap`)
and per-token 3D coordinates of a resized, cropped view (`coords`).
"""
