"""Draw docs/inspect.png from a recording written by ``ross3d-data inspect``.

The Rerun viewer cannot render here (no GPU: ``rerun --headless --screenshot-to`` finds only
Mesa's llvmpipe and panics with "Failed to get render context"), so this script reads the
``.rrd`` back with Rerun's own reader (``rerun.chunk.RrdReader``) and draws what it holds with
matplotlib: the mesh (faces above 2.2 m left out so the room can be seen from above), the GT
boxes, the posed cameras as frustums, the trajectory, one view's 3D token points, the BEV with
the cameras, and view 0's image and depth. Nothing is drawn that the recording does not hold.

    uv run python docs/make_inspect_png.py [--out docs/inspect.png]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

CEILING_CUT_M = 2.2


def read_static(path: Path) -> dict[str, dict[str, list]]:
    """``{entity: {column: first row}}`` of a recording's static data."""
    from rerun.chunk import RrdReader

    out: dict[str, dict[str, list]] = defaultdict(dict)
    for chunk in RrdReader(path).stream():
        batch = chunk.to_record_batch()
        for name in batch.schema.names:
            if ":" in name:
                out[chunk.entity_path][name] = batch.column(name).to_pylist()[0]
    return out


def unpack_rgb(packed: list[int]) -> np.ndarray:
    """Rerun's 0xRRGGBBAA colours -> (N, 3) floats in [0, 1]."""
    c = np.asarray(packed, np.uint32)
    return np.stack([(c >> 24) & 255, (c >> 16) & 255, (c >> 8) & 255], axis=1) / 255.0


def image(row: dict, kind: str) -> np.ndarray:
    fmt = row[f"{kind}:format"][0]
    data = bytes(row[f"{kind}:buffer"][0])
    if kind == "DepthImage":
        return np.frombuffer(data, "<u2").reshape(fmt["height"], fmt["width"])
    return np.frombuffer(data, np.uint8).reshape(fmt["height"], fmt["width"], 3)


def frustum(cam: dict) -> np.ndarray:
    """(5, 3) world points: centre, then the image corners at the image-plane distance."""
    K = np.reshape(cam["Pinhole:image_from_camera"][0], (3, 3)).T  # column-major
    w, h = cam["Pinhole:resolution"][0]
    d = cam["Pinhole:image_plane_distance"][0]
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float) @ np.linalg.inv(K).T
    R = np.reshape(cam["Transform3D:mat3x3"][0], (3, 3)).T
    t = np.asarray(cam["Transform3D:translation"][0])
    return np.vstack([t, corners * d @ R.T + t])


def draw_world(ax, rec: dict) -> None:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    mesh = rec["/world/mesh"]
    v = np.asarray(mesh["Mesh3D:vertex_positions"])
    f = np.asarray(mesh["Mesh3D:triangle_indices"])
    f = f[v[f][:, :, 2].max(axis=1) < CEILING_CUT_M]
    colors = unpack_rgb(mesh["Mesh3D:vertex_colors"])[f].mean(axis=1)
    ax.add_collection3d(Poly3DCollection(v[f], facecolors=colors, linewidths=0, alpha=0.55))
    boxes = rec["/world/boxes"]
    for c, hs, label in zip(boxes["Boxes3D:centers"], boxes["Boxes3D:half_sizes"],
                            boxes["Boxes3D:labels"], strict=True):  # fmt: skip
        lo, hi = np.subtract(c, hs), np.add(c, hs)
        for a in range(3):
            for u in (0, 1):
                for w in (0, 1):
                    p, q = lo.copy(), hi.copy()
                    b1, b2 = [x for x in range(3) if x != a]
                    p[b1] = q[b1] = (lo, hi)[u][b1]
                    p[b2] = q[b2] = (lo, hi)[w][b2]
                    ax.plot(*zip(p, q, strict=True), color="tab:orange", linewidth=1.0)
        ax.text(*hi, label, fontsize=7, color="tab:orange")
    for path in sorted(p for p in rec if p.startswith("/world/views/") and p.count("/") == 3):
        fr = frustum(rec[path])
        for i in (1, 2, 3, 4):
            ax.plot(*zip(fr[0], fr[i], strict=True), color="tab:blue", linewidth=0.8)
        ring = fr[[1, 2, 3, 4, 1]]
        ax.plot(ring[:, 0], ring[:, 1], ring[:, 2], color="tab:blue", linewidth=0.8)
    strip = np.asarray(rec["/world/trajectory"]["LineStrips3D:strips"][0])
    ax.plot(strip[:, 0], strip[:, 1], strip[:, 2], color="black", linewidth=0.8)
    tokens = rec["/world/tokens"]
    pts = np.asarray(tokens["Points3D:positions"])
    ax.scatter(
        *pts.T,
        c=unpack_rgb(tokens["Points3D:colors"]),
        s=10,
        depthshade=False,
        edgecolors="black",
        linewidths=0.3,
    )
    lo, hi = v.min(0), v.max(0)
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), zlim=(0, CEILING_CUT_M))
    ax.set_box_aspect(hi - lo if hi[2] - lo[2] < CEILING_CUT_M else (*(hi - lo)[:2], 2.2))
    ax.view_init(elev=38, azim=-58)
    ax.set_axis_off()
    ax.set_title("world: mesh, GT boxes, camera frustums, trajectory, view 0's 3D tokens")


def draw(rec: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 8), dpi=100)
    grid = fig.add_gridspec(2, 3, width_ratios=[2.4, 1, 1], wspace=0.05, hspace=0.15)
    draw_world(fig.add_subplot(grid[:, 0], projection="3d"), rec)
    ax = fig.add_subplot(grid[0, 1:])
    ax.imshow(image(rec["/bev"], "Image"))
    cams = rec["/bev/cameras"]
    for (x, y), label in zip(cams["Points2D:positions"], cams["Points2D:labels"], strict=True):
        ax.plot(x - 0.5, y - 0.5, "o", color="tab:blue", markeredgecolor="white")
        ax.annotate(label, (x - 0.5, y - 0.5), color="white", xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    ax.set_title("bev + bev/cameras")
    ax.set_axis_off()
    for col, (entity, kind) in enumerate([("rgb", "Image"), ("depth", "DepthImage")]):
        ax = fig.add_subplot(grid[1, 1 + col])
        ax.imshow(image(rec[f"/world/views/000/{entity}"], kind), cmap="viridis")
        ax.set_title(f"world/views/000/{entity}")
        ax.set_axis_off()
    fig.suptitle("ross3d-data inspect: a demo scene's recording, drawn with matplotlib "
                 "from the .rrd (the Rerun viewer needs a GPU)", fontsize=12)  # fmt: skip
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    from ross3d_data.inspect import inspect_scene
    from ross3d_data.synthetic.scenes import make_demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("inspect.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (scene,) = make_demo(Path(tmp) / "demo", n_scenes=1, seed=0)
        rrd = inspect_scene(scene, Path(tmp) / "rrd", views=6)
        draw(read_static(rrd), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
