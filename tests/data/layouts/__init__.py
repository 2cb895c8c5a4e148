"""Writers of synthetic scenes in other datasets' exact published layouts (one module each)."""
