"""Style mixing: which ws indices control which resolution, named presets of them, and the row x column mix."""

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError
from generation.seeds import seeds_to_z

# The column seeds give the coarse and middle thirds of the resolutions (anatomy), the rows the fine third (detail).
# At 1 mm that is ws 0-6, the original's default; at 2 mm ws 0-4 (the original's 0-6 reaches 40x48x56), on the
# demo network ws 0-4 of 0-7 (0-6 would leave the rows only the last ToRGB style).
DEFAULT_STYLES = "coarse,middle"


def ws_resolutions(G):
    """Resolution (D, H, W) that each ws index controls (networks.layer_names: for an index shared by a ToRGB and
    the next block's conv0, the higher resolution). Falls back to StyleGAN2's numbering without layer_names."""
    try:
        from training import networks

        return [tuple(int(r) for r in res) for _, _, res in networks.layer_names(G)]
    except (ImportError, AttributeError):
        pass
    # Index 0 = base conv; stage l >= 1 uses 2l-1 and 2l; the last index is the final ToRGB.
    levels = _stage_shapes(G)
    return [levels[min((i + 1) // 2, len(levels) - 1)] for i in range(int(G.num_ws))]


def _stage_shapes(G):
    cfg = G.synthesis
    base = tuple(int(s) for s in getattr(cfg, "base_shape", (0, 0, 0)))
    ups = getattr(cfg, "up_factors", None)
    if not base[0] or ups is None:
        n = int(G.num_ws) // 2
        final = tuple(int(s) for s in G.img_shape)
        return [tuple(s // 2 ** (n - 1 - k) for s in final) for k in range(n)]
    shapes = [base]
    for f in ups:
        f = (f,) * 3 if np.isscalar(f) else tuple(f)
        shapes.append(tuple(s * int(u) for s, u in zip(shapes[-1], f, strict=True)))
    return shapes


def style_presets(G):
    """{'coarse'|'middle'|'fine': (ws indices, resolutions)} splitting the resolutions in thirds.

    coarse = the lowest third of the resolutions (global anatomy), fine = the highest third (detail), middle =
    the rest. At 2 mm (5 resolutions) that is coarse 5x6x7-10x12x14, middle 20x24x28, fine 40x48x56-80x96x112.
    """
    res_of_ws = ws_resolutions(G)
    levels = sorted(set(res_of_ws), key=lambda r: int(np.prod(r)))
    n = len(levels)
    k = max(1, round(n / 3))
    groups = {"coarse": levels[:k], "middle": levels[k : max(k, n - k)], "fine": levels[max(k, n - k) :]}
    return {
        name: ([i for i, r in enumerate(res_of_ws) if r in group], group) for name, group in groups.items()
    }


def describe_presets(G):
    lines = []
    for name, (idx, res) in style_presets(G).items():
        res_txt = ", ".join("x".join(map(str, r)) for r in res) or "(none at this depth)"
        idx_txt = f"{idx[0]}-{idx[-1]}" if idx else "-"
        lines.append(f"{name:>6}: ws {idx_txt:<6} resolutions {res_txt}")
    return "\n".join(lines)


def _index_range(tok):
    """'3' -> [3], '0-3' -> [0, 1, 2, 3]; None when tok is neither."""
    lo, sep, hi = tok.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        return None
    return list(range(a, b + 1)) if a <= b else None


def parse_styles(text, G):
    """Style text -> sorted ws indices taken from the column seed. Comma-separated tokens, each a preset (coarse,
    middle, fine), a resolution or resolution range named like the network's (10x12x14, 5x6x7-10x12x14), or ws
    index ranges (0-3). 'all' and 'none' stand alone."""
    num_ws = int(G.num_ws)
    text = str(text).strip().lower()
    if text in ("none", ""):
        return []
    if text == "all":
        return list(range(num_ws))
    presets, res_of_ws = style_presets(G), ws_resolutions(G)
    names = {"x".join(map(str, r)): r for r in res_of_ws}
    out = set()

    def fail(why):
        one_line = "; ".join(" ".join(line.split()) for line in describe_presets(G).splitlines())
        raise InputError(f"styles {text!r}: {why} (presets: {one_line})")

    for tok in (t.strip() for t in text.split(",")):
        if tok in presets:
            if not presets[tok][0]:
                fail(f"this network is too shallow for a '{tok}' preset")
            out.update(presets[tok][0])
        elif "x" in tok:
            ends = tok.split("-")
            if len(ends) > 2 or any(e not in names for e in ends):
                fail(f"'{tok}' is not a resolution (range) of this network: {', '.join(names)}")
            sizes = [int(np.prod(names[e])) for e in ends]
            lo, hi = min(sizes), max(sizes)
            out.update(i for i, r in enumerate(res_of_ws) if lo <= int(np.prod(r)) <= hi)
        else:
            idx = _index_range(tok)
            if idx is None:
                fail(f"'{tok}' is not a preset, resolution or ws index range such as 0-3")
            bad = [i for i in idx if not 0 <= i < num_ws]
            if bad:
                fail(f"indices {bad} out of range; this network has ws 0-{num_ws - 1}")
            out.update(idx)
    return sorted(out)


def style_mix(runner, row_seeds, col_seeds, col_styles, psi=1.0, noise_mode="const", c=None,
              truncation_cutoff=None, noise_seed=0, row_ws=None):
    """Row seeds x column seeds; each cell takes the row seed's ws and the column seed's ws at col_styles.

    Noise never depends on the seed here (const maps, none, or one 'random' draw from noise_seed shared by
    every volume), so an empty col_styles reproduces the row seed's volume and all styles the column seed's.
    row_ws: [R, num_ws, w_dim] rows given as ws (e.g. projections) instead of mapped from row_seeds.
    Returns dict rows [R,...], cols [C,...], mix [R, C, ...] (volumes in [-1, 1]).
    """
    if row_ws is None:
        seeds = list(row_seeds) + list(col_seeds)
        ws = runner.map(seeds_to_z(seeds, runner.z_dim), c, psi=psi, truncation_cutoff=truncation_cutoff)
    else:
        col = runner.map(seeds_to_z(list(col_seeds), runner.z_dim), c, psi=psi, truncation_cutoff=truncation_cutoff)
        ws = np.concatenate([np.asarray(row_ws, np.float32), col])
    row_ws, col_ws = ws[: len(ws) - len(col_seeds)], ws[len(ws) - len(col_seeds) :]
    mixed = np.repeat(row_ws[:, None], len(col_seeds), axis=1)  # [R, C, num_ws, w_dim]
    cols = list(col_styles)
    if cols:
        mixed[:, :, cols] = col_ws[None, :, cols]
    all_ws = np.concatenate([ws, mixed.reshape((-1,) + ws.shape[1:])], axis=0)
    vols = runner.synthesize_shared_noise(all_ws, noise_mode, noise_seed)
    r, n = len(row_ws), len(ws)
    return EasyDict(rows=vols[:r], cols=vols[r:n], mix=vols[n:].reshape((r, len(col_seeds)) + vols.shape[1:]))
