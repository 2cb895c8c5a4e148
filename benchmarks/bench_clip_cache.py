"""What the per-clip cache saves per training step: grounding patch masks and BEV VAE latents.

Run: ``uv run python benchmarks/bench_clip_cache.py [--boxes 40] [--repeats 3] [--skip-flux]``.

A clip of the 7b recipe's size: 32 views of 384x384 depth (sloped planes with noise, 5 %
invalid pixels, random poses), K GT boxes around back-projected pixels, a 432x432 BEV. Times:

* masks, per grounding example without the cache (what collate runs for every grounding
  instruction) and once per clip when building the cache: the same numpy rule,
  ``ross3d_data.cache.patch_masks.patches_in_boxes`` (the model's torch copy went in issue 16);
  per example with the cache: the HDF5 read, plus the one-time fingerprint check of the clip per
  process;
* BEV, per non-grounding example without the cache: the frozen VAE's encode at 432 px (the
  FLUX layout with random weights, and the tiny test VAE); with the cache: the HDF5 read of the
  moments plus drawing the latent from them (``LatentTokenizer.encode_bev(moments=...)``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ross3d_data.cache.patch_masks import KIND, PatchMaskParams, clip_masks, mask_inputs
from ross3d_data.cache.store import ClipCacheReader, fingerprint, write_cache
from ross3d_model.configuration.parts import VaeConfig
from ross3d_model.inputs.caches import BEV_KIND
from ross3d_model.modeling.latents import LatentTokenizer

VIEWS, SIZE, BEV = 32, 384, 432


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_clip(n_boxes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    depth = np.stack([rng.uniform(1200, 3500) + rng.uniform(-3, 3) * rows
                      + rng.uniform(-3, 3) * cols for _ in range(VIEWS)])  # fmt: skip
    depth = (depth + rng.normal(0, 15, depth.shape)).clip(0).astype(np.uint16)
    depth[rng.random(depth.shape) < 0.05] = 0
    f = 300.0
    K = np.tile(
        np.array([[f, 0, SIZE / 2], [0, f, SIZE / 2], [0, 0, 1]], np.float32), (VIEWS, 1, 1)
    )
    T = np.tile(np.eye(4, dtype=np.float32), (VIEWS, 1, 1))
    for v in range(VIEWS):
        a = rng.uniform(0, 2 * np.pi)
        T[v, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        T[v, :3, 3] = rng.uniform(-3, 3, 3)
    v, r, c = rng.integers(0, VIEWS, n_boxes), *rng.integers(0, SIZE, (2, n_boxes))
    z = np.maximum(depth[v, r, c], 1000) / 1000.0
    cam = np.stack([(c - SIZE / 2) / f * z, (r - SIZE / 2) / f * z, z], 1)
    centres = np.einsum("nij,nj->ni", T[v, :3, :3], cam) + T[v, :3, 3]
    boxes = np.concatenate([centres, rng.uniform(0.3, 2.0, (n_boxes, 3))], 1).astype(np.float32)
    bev = rng.integers(0, 256, (BEV, BEV, 3)).astype(np.uint8)
    bev[: BEV // 4] = 0
    return {"depth_mm": depth, "K_crop": K, "T_aligned_cam": T, "boxes": boxes, "bev": bev}


def bench_masks(clip: dict, tmp: Path, repeats: int) -> None:
    params = PatchMaskParams()  # the 7b values: grid 27, 14-px patches, 0.5, depth rule "any"
    inputs = mask_inputs(clip)
    t_numpy = _best(lambda: clip_masks(inputs, params), repeats)
    masks = clip_masks(inputs, params)
    digest = fingerprint(KIND, params.to_dict(), inputs)
    path = tmp / "masks.h5"
    write_cache(path, KIND, params.to_dict(), "src", [("clip", digest, {"in_box": masks})])
    reader = ClipCacheReader(path, KIND, params.to_dict(), "src", ["clip"], "")
    t_check = _best(lambda: fingerprint(KIND, params.to_dict(), inputs), repeats)
    reader.read("clip", inputs)  # the per-process check is done once per clip
    t_read = _best(lambda: reader.read("clip", inputs), repeats * 10)
    k = len(inputs["boxes"])
    print(f"patch masks, {VIEWS} views x {SIZE}^2, {k} boxes ({masks.sum()} patch hits):")
    print(f"  per grounding example without the cache, or once per clip to build it: "
          f"{t_numpy * 1e3:8.1f} ms")  # fmt: skip
    print(f"  per grounding example, cached (HDF5 read):         {t_read * 1e3:8.2f} ms")
    print(f"  once per clip per process, fingerprint check:      {t_check * 1e3:8.1f} ms")
    print(f"  cache size per clip: {path.stat().st_size / 1e3:.0f} kB")


def _flux_layout_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16,
        norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False,
    ).eval()  # fmt: skip


@torch.no_grad()
def _flux_encode(size: int, repeats: int) -> tuple[float, float]:
    """(seconds, TFLOP) of one FLUX-layout VAE encode of a size x size image."""
    from torch.utils.flop_counter import FlopCounterMode

    vae = _flux_layout_vae()
    x = torch.rand(1, 3, size, size) * 2 - 1
    seconds = _best(lambda: vae.encode(x), max(1, repeats - 1))
    with FlopCounterMode(display=False) as counter:
        vae.encode(x)
    return seconds, counter.get_total_flops() / 1e12


@torch.no_grad()
def bench_bev(clip: dict, tmp: Path, repeats: int, flux: bool) -> None:
    cfg = VaeConfig()
    tok = LatentTokenizer(cfg)
    bev = torch.from_numpy(clip["bev"]).permute(2, 0, 1)[None].contiguous()
    t_tiny = _best(lambda: tok.encode_bev(bev), repeats)
    mean, std = tok.bev_moments(bev)
    params = {"vae": "bench"}
    digest = fingerprint(BEV_KIND, params, {"bev": clip["bev"]})
    arrays = {"mean": mean[0].numpy(), "std": std[0].numpy()}
    path = tmp / "bev.h5"
    write_cache(path, BEV_KIND, params, "src", [("clip", digest, arrays)])
    reader = ClipCacheReader(path, BEV_KIND, params, "src", ["clip"], "")
    reader.read("clip", {"bev": clip["bev"]})

    def cached():
        got = reader.read("clip", {"bev": clip["bev"]})
        moments = torch.from_numpy(np.stack([got["mean"], got["std"]]))[None]
        return tok.encode_bev(bev, moments=moments)

    t_cached = _best(cached, repeats * 10)
    t_check = _best(lambda: fingerprint(BEV_KIND, params, {"bev": clip["bev"]}), repeats)
    print(f"BEV latents, {BEV}x{BEV} px -> 16 x {BEV // 8}^2 moments:")
    if flux:
        t_flux, tflop = _flux_encode(BEV, repeats)
        print(f"  per example, VAE encode (FLUX layout, 84M params): {t_flux * 1e3:8.0f} ms, "
              f"{tflop:.3f} TFLOP")  # fmt: skip
        t_view, tflop_view = _flux_encode(216, repeats)
        print(f"  views: one 216-px view, FLUX layout: {t_view * 1e3:.0f} ms, {tflop_view:.3f} "
              f"TFLOP; a cross-view example encodes its 8 masked views: {8 * tflop_view:.2f} "
              "TFLOP")  # fmt: skip
    print(f"  per example, VAE encode (tiny test VAE):           {t_tiny * 1e3:8.1f} ms")
    print(f"  per example, cached (HDF5 read + draw):            {t_cached * 1e3:8.2f} ms")
    print(f"  once per clip per process, fingerprint check:      {t_check * 1e3:8.2f} ms")
    print(f"  cache size per clip: {path.stat().st_size / 1e3:.0f} kB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-flux", action="store_true", help="skip the FLUX-layout VAE timing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip = make_clip(args.boxes)
    with tempfile.TemporaryDirectory() as tmp:
        bench_masks(clip, Path(tmp), args.repeats)
        bench_bev(clip, Path(tmp), args.repeats, not args.skip_flux)


if __name__ == "__main__":
    main()
