"""regress and trajectory: conditional atlases from latents regressed on covariates, and one subject moved along
the fitted covariate effect (disease modelling).

regress: fit (regression.py) on the embedding's covariates, report the cross-validated error, and make the atlas
at each value of one covariate (`at`), the other covariates held at `hold` values, else at the cohort's mean
(continuous) or most frequent level (categorical). Atlases, their differences from the first, a strip and GIF.
trajectory: a subject's latent w plus the model's change f(c') - f(c) between its covariates c and the changed
ones c' (a '+20'/'-5' change adds to the subject's value, a plain number sets it): the predicted volume, its
difference from the subject's reconstruction, and frames along the way.
"""

import os
from collections import Counter

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError
from generation.latent_stats import regression
from generation.latent_stats.cohort import check_names, numeric_value


def fit_model(opts, emb, names):
    """(design, model, cv): the regression of the embedding's latents on covariates `names`; ValueError for a
    covariate missing from the cohort, one holding text, or too few subjects."""
    from generation.latent_stats.embedding import latent_vectors

    where = emb.record_path
    kinds = dict(emb.record.get("covariate_kinds") or {})
    check_names(names, kinds, where)
    rows = [r["covariates"] for r in emb.record.rows]
    for n in names:
        missing = [emb.record.rows[i]["name"] for i, r in enumerate(rows) if n not in r or r[n] is None]
        if missing:
            raise InputError(f"{where}: covariate {n!r} is missing for {', '.join(missing[:5])}")
    method = opts.get("method", "linear")
    design = regression.Design(names, kinds, rows, where)
    need = regression.min_subjects(design, method)
    if len(rows) < need:
        raise InputError(f"{where}: {method} regression on {', '.join(names)} ({len(design.columns)} parameters) needs "
                         f"at least {need} subjects (with cross-validation); the embedding has {len(rows)}")
    Y = latent_vectors(emb)
    model = regression.fit(design, Y, method, opts.get("bandwidth"))
    cv = regression.cross_validate(design, Y, method, getattr(model, "bandwidth", None), opts.get("folds"))
    return design, model, cv


def reference_values(design, hold, where):
    """{name: value} the covariates are held at: `hold`, else the cohort mean / most frequent level."""
    out = {}
    for j, n in enumerate(design.names):
        if n in hold:
            out[n] = numeric_value(n, hold[n], f"{where} (held value)")
        elif design.kinds[n] == "categorical":
            out[n] = Counter(design.raw[:, j].tolist()).most_common(1)[0][0]
        else:
            out[n] = float(design.raw[:, j].mean())
    return out


def _value_tag(v):
    return f"{v:g}".replace("-", "m").replace(".", "p")


def regress_covariates(opts):
    """The model's covariates: --covariates with the --at covariate always among them."""
    return list(dict.fromkeys([*(opts.get("covariates") or []), opts.at[0]]))


def prepare_regress(opts, emb):
    """(design, model, cv) of regress, every covariate and held value checked (NumPy only, nothing written)."""
    names = regress_covariates(opts)
    outside = [n for n in (opts.get("hold") or {}) if n not in names]
    if outside:
        raise InputError(f"held covariates {outside} are not in the model ({', '.join(names)}): add them to the "
                         "covariates or drop them")
    design, model, cv = fit_model(opts, emb, names)
    at_name, at_values = opts.at
    if design.kinds[at_name] == "categorical":
        unseen = [v for v in at_values if float(v) not in design.levels[at_name]]
        if unseen:
            raise InputError(f"{emb.record_path}: categorical covariate {at_name!r} has levels "
                             f"{design.levels[at_name]}, not {unseen}")
    return design, model, cv


def run_regress(opts, emb, net, manifest, out, fitted=None):
    from generation.latent_stats import figures
    from generation.latent_stats.embedding import to_ws
    from generation.latent_stats.latent_volumes import synthesize
    from generation.outputs import write_volume
    from volumes.visualize import write_strip_and_gif
    from volumes.volume_io import to_unit_range

    at_name, at_values = opts.at
    hold = dict(opts.get("hold") or {})
    design, model, cv = fitted if fitted is not None else prepare_regress(opts, emb)
    names = design.names
    base = reference_values(design, hold, emb.record_path)
    raws = []
    for v in at_values:
        vals = dict(base, **{at_name: float(v)})
        raws.append(design.raw_of(vals)[0])
    print(f"{opts.get('method', 'linear')} regression on {', '.join(names)}: cross-validated error "
          f"{cv.mse:.4g} per latent coordinate (mean only: {cv.baseline_mse:.4g}, R^2 {cv.r2:.3f}, {cv.folds} folds)")
    vectors = model.predict(np.stack(raws))
    vols = synthesize(net.G, to_ws(emb, vectors), int(opts.get("batch", 4)))
    affine = np.asarray(manifest.affine, np.float64)
    files, units = [], [to_unit_range(v) for v in vols]
    for v, vol in zip(at_values, vols, strict=True):
        name = f"atlas_{at_name}_{_value_tag(float(v))}.nii.gz"
        write_volume(os.path.join(out, name), vol, affine)
        files.append(name)
    diffs = [u - units[0] for u in units[1:]]
    from volumes import volume_io

    for v, d in zip(at_values[1:], diffs, strict=True):
        name = f"difference_{at_name}_{_value_tag(float(v))}_minus_{_value_tag(float(at_values[0]))}.nii.gz"
        volume_io.write_nifti(os.path.join(out, name), d[..., 0], affine)
        files.append(name)
    write_strip_and_gif(os.path.join(out, "atlases.png"), os.path.join(out, "atlases.gif"), vols,
                        axis=int(opts.get("axis", 2)), duration_ms=400)
    figures.rows_png(os.path.join(out, "atlases_rows.png"), units)
    diff_range = figures.differences_png(os.path.join(out, "differences.png"), diffs) if diffs else None
    files += ["atlases.png", "atlases.gif", "atlases_rows.png"] + (["differences.png"] if diffs else [])
    summary = EasyDict(method=opts.get("method", "linear"), covariates=names, design_columns=design.columns,
                       at={at_name: [float(v) for v in at_values]}, held_at=base, cross_validation=dict(cv),
                       files=files, difference_units="[0, 1] intensity, later atlas minus the first",
                       difference_picture_range=diff_range,
                       max_abs_difference=[float(np.max(np.abs(d))) for d in diffs])
    if isinstance(model, regression.KernelModel):
        summary.bandwidth = model.bandwidth
    return summary


def parse_change(text):
    """'age=+20' -> ('age', 20.0, True) (added to the subject's value); 'group=1' -> ('group', 1.0, False)."""
    name, sep, value = str(text).partition("=")
    if not sep or not name.strip() or not value.strip():
        raise InputError(f"change {text!r}: expected name=+delta (added), name=-delta or name=value (set)")
    try:
        x = float(value)
    except ValueError:
        raise InputError(f"change {text!r}: {value!r} is not a number") from None
    return name.strip(), x, value.strip()[0] in "+-"


def find_subject(emb, subject):
    """Row position of `subject` (a dataset index or a row name such as index00003)."""
    for k, r in enumerate(emb.record.rows):
        if str(subject) in (str(r["index"]), r["name"]):
            return k
    have = ", ".join(str(r["index"]) for r in emb.record.rows[:10])
    raise InputError(f"{emb.record_path}: no subject {subject!r} among the embedded volumes (indices {have}, ...)")


def prepare_trajectory(opts, emb):
    """(design, model, cv) of trajectory, the subject and the covariates checked (NumPy only, nothing written)."""
    name = parse_change(opts.change)[0]
    find_subject(emb, opts.subject)
    return fit_model(opts, emb, list(dict.fromkeys([*(opts.get("covariates") or []), name])))


def run_trajectory(opts, emb, net, manifest, out, fitted=None):
    from generation.latent_stats import figures
    from generation.latent_stats.embedding import latent_vectors, to_ws
    from generation.latent_stats.latent_volumes import synthesize
    from generation.outputs import write_volume
    from volumes import volume_io
    from volumes.visualize import write_strip_and_gif
    from volumes.volume_io import to_unit_range

    name, amount, relative = parse_change(opts.change)
    k = find_subject(emb, opts.subject)
    design, model, cv = fitted if fitted is not None else prepare_trajectory(opts, emb)
    names = design.names
    c0 = design.raw[k].copy()
    j = design.names.index(name)
    c1 = c0.copy()
    c1[j] = c0[j] + amount if relative else amount
    if design.kinds[name] == "categorical" and c1[j] not in design.levels[name]:
        raise InputError(f"{emb.record_path}: categorical covariate {name!r} has levels {design.levels[name]}, "
                         f"not {c1[j]:g}")
    frames = max(2, int(opts.get("frames", 5)))
    path = np.stack([c0 + t * (c1 - c0) for t in np.linspace(0, 1, frames)])
    w0 = latent_vectors(emb)[k].astype(np.float64)
    moves = model.predict(path) - model.predict(c0[None])
    vectors = w0[None] + moves
    vols = synthesize(net.G, to_ws(emb, vectors), int(opts.get("batch", 4)))
    from volumes.manifest import volume_affine

    row = emb.record.rows[k]
    subj_affine = volume_affine(manifest, row["index"])
    write_volume(os.path.join(out, "subject_reconstruction.nii.gz"), vols[0], subj_affine)
    write_volume(os.path.join(out, "predicted.nii.gz"), vols[-1], subj_affine)
    diff = to_unit_range(vols[-1]) - to_unit_range(vols[0])
    volume_io.write_nifti(os.path.join(out, "difference.nii.gz"), diff[..., 0], subj_affine)
    figures.rows_png(os.path.join(out, "trajectory.png"), [to_unit_range(vols[0]), to_unit_range(vols[-1])])
    r = figures.differences_png(os.path.join(out, "difference.png"), [diff])
    write_strip_and_gif(os.path.join(out, "frames.png"), os.path.join(out, "frames.gif"), vols,
                        axis=int(opts.get("axis", 2)), duration_ms=300)
    return EasyDict(subject=row, covariates=names, method=opts.get("method", "linear"),
                    change={name: {"from": float(c0[j]), "to": float(c1[j])}}, cross_validation=dict(cv),
                    latent_change_norm=float(np.linalg.norm(moves[-1])),
                    max_abs_difference=float(np.max(np.abs(diff))), difference_picture_range=r,
                    files=["subject_reconstruction.nii.gz", "predicted.nii.gz", "difference.nii.gz",
                           "trajectory.png", "difference.png", "frames.png", "frames.gif"],
                    difference_units="[0, 1] intensity, predicted minus the subject's reconstruction")
