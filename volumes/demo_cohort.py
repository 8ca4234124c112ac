"""Known covariates of the synthetic demo cohort: an age that drives a stated atrophy, a binary group.

Each synthetic subject gets
  age   uniform in [AGE_RANGE] years,
  group 0 or 1 with probability 1/2 (group 1 ages faster: an accelerated-atrophy "patient" group),
and its anatomy follows the atrophy fraction
  a = (age + GROUP_YEARS * group - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])      (0 at 20 years, 1 at 80)
by two rules applied to the MNI152 template before the subject's random warp:
  ventricles: the lateral ventricles' walls move outwards: each point is pulled towards the ventricles along the
              flow of the gradient of their smoothed mask (normalised to a maximum of 1) for VENTRICLE_MM * a mm;
  sulci:      the cortical band (within CORTEX_MM of the brain's surface) moves SULCAL_BLEND * a of the way
              towards its grey-scale erosion by one voxel (a 3x3x3 ball at 1 mm): dark sulci widen, folds thin.
The lateral ventricles of the template are, by one fixed rule: brain voxels whose grey + white matter probability
(nilearn's MNI152 tissue maps) is below 0.3 and whose T1 intensity is below 0.4 of the maximum, in the two largest
connected components whose centres lie off the midline (|x| > 5 mm). Each volume's true ventricle volume is that
mask carried through the same deformation (atrophy, random warp, head scale) onto the output grid, summed with its
partial volumes: recorded in the manifest beside age and group.

All of this follows from the subject's seed, through a random stream of its own, so the random warp, bias field,
contrast and noise of a seed are those it had before the cohort had covariates.
"""

import os

import numpy as np

AGE_RANGE = (20.0, 80.0)
GROUP_YEARS = 10.0  # group 1 looks this many years older
VENTRICLE_MM = 6.0  # flow length at the ventricle walls at atrophy fraction 1
VENTRICLE_SMOOTH_MM = 8.0  # smoothing of the ventricle mask whose gradient gives the flow's direction
FLOW_STEPS = 8  # Euler steps of the flow (a flow of a smooth field is a diffeomorphism: no folding)
SULCAL_BLEND = 0.7  # fraction of the way to the eroded template at atrophy fraction 1
CORTEX_MM = 12.0

COVARIATES = {
    "age": {"kind": "continuous", "unit": "years", "description": f"uniform in [{AGE_RANGE[0]:g}, {AGE_RANGE[1]:g}]"},
    "group": {
        "kind": "categorical",
        "categories": [0, 1],
        "description": f"0 or 1 with probability 1/2; group 1 has the atrophy of a subject {GROUP_YEARS:g} years older",
    },
    "ventricle_volume_ml": {
        "kind": "continuous",
        "unit": "mL",
        "description": "true volume of the deformed lateral-ventricle mask on the output grid (partial volumes summed)",
    },
}

RULE = (
    f"atrophy a = (age + {GROUP_YEARS:g} * group - {AGE_RANGE[0]:g}) / {AGE_RANGE[1] - AGE_RANGE[0]:g}; lateral "
    f"ventricle walls moved outwards along the flow of their smoothed mask's gradient for up to {VENTRICLE_MM:g} * a "
    f"mm; cortical band ({CORTEX_MM:g} mm) blended "
    f"{SULCAL_BLEND:g} * a of the way to its 1-voxel grey-scale erosion (sulcal widening)"
)

_GM_FILE = os.path.join("datasets", "data", "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
_WM_FILE = os.path.join("datasets", "data", "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")


def draw_covariates(seed):
    """(age, group) of the subject with this seed, from a stream separate from its anatomy's."""
    rng = np.random.default_rng([int(seed), 1])
    age = float(rng.uniform(*AGE_RANGE))
    group = int(rng.random() < 0.5)
    return age, group


def atrophy_fraction(age, group):
    return (float(age) + GROUP_YEARS * int(group) - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])


def _tissue_probability(template_dir):
    import nibabel as nib

    gm = np.asarray(nib.load(os.path.join(template_dir, _GM_FILE)).get_fdata(dtype=np.float32))
    wm = np.asarray(nib.load(os.path.join(template_dir, _WM_FILE)).get_fdata(dtype=np.float32))
    return (gm + wm) / 255.0


def ventricle_mask(template, t_affine, tissue):
    """Boolean mask of the template's lateral ventricles (the rule in the module docstring)."""
    from scipy import ndimage

    candidates = (template > 0.02) & (tissue < 0.3) & (template < 0.4)
    lab, n = ndimage.label(candidates)
    if n == 0:
        raise ValueError("the template has no ventricle-like region")
    index = np.arange(1, n + 1)
    sizes = ndimage.sum(candidates, lab, index)
    centres = np.asarray(ndimage.center_of_mass(candidates, lab, index))  # voxels
    x_mm = centres @ t_affine[0, :3] + t_affine[0, 3]
    off_midline = [i for i in np.argsort(sizes)[::-1] if abs(x_mm[i]) > 5.0][:2]
    return np.isin(lab, index[off_midline])


def atrophy_fields(template, t_affine, template_dir):
    """Per-template fields the atrophy rules need, made once: (ventricle mask float32, direction [3, ...] in
    template voxels per unit displacement (max norm 1), cortical difference (eroded - template) * cortex weight)."""
    from scipy import ndimage

    spacing = np.linalg.norm(t_affine[:3, :3], axis=0)
    mask = ventricle_mask(template, t_affine, _tissue_probability(template_dir))
    phi = ndimage.gaussian_filter(mask.astype(np.float32), VENTRICLE_SMOOTH_MM / spacing)
    grad = np.stack(np.gradient(phi))  # per voxel; points towards the ventricles
    norm = np.sqrt((grad**2).sum(0)).max()
    direction = (grad / max(float(norm), 1e-12)).astype(np.float32)
    brain = template > 0.02
    depth_mm = ndimage.distance_transform_edt(brain, sampling=spacing)
    cortex = ndimage.gaussian_filter((brain & (depth_mm < CORTEX_MM)).astype(np.float32), 2.0 / spacing)
    eroded = ndimage.grey_erosion(template, footprint=ndimage.generate_binary_structure(3, 1))
    difference = ((eroded - template) * cortex).astype(np.float32)
    return mask.astype(np.float32), direction, difference


def template_points(src_world, t_affine, direction, a):
    """Template voxel coordinates [3, n] that the points src_world [3, n] (mm, in the unatrophied subject's frame)
    show after atrophy a: moved along the flow of the ventricle direction field for VENTRICLE_MM * a millimetres
    (FLOW_STEPS Euler steps)."""
    from scipy import ndimage

    inv = np.linalg.inv(t_affine)
    vox = inv[:3, :3] @ src_world + inv[:3, 3:4]
    if a == 0:
        return vox
    step_vox = (VENTRICLE_MM * a / FLOW_STEPS) / np.linalg.norm(t_affine[:3, :3], axis=0)
    for _ in range(FLOW_STEPS):
        pull = np.stack([ndimage.map_coordinates(direction[i], vox, order=1, mode="nearest") for i in range(3)])
        vox = vox + pull * step_vox[:, None]
    return vox
