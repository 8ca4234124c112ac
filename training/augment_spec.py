"""The augmentation modes and ADA pipeline letters, without TensorFlow: the option table validates with them,
training/augment.py builds the pipeline from them."""

AUG_MODES = ("ada", "fixed", "noaug")  # training/augment.py: adaptive p, fixed p, no augmentation
GROUPS = {
    "b": ("mirror", "flip", "rotate90", "xint"),
    "g": ("scale", "rotate", "aniso", "xfrac"),
    "c": ("biasfield", "gamma", "brightness", "contrast", "invert"),
    "n": ("noise", "cutout"),
}
TRANSFORMS = tuple(t for names in GROUPS.values() for t in names)


def parse_augpipe(spec):
    """Multipliers {transform: 1.0 or 0.0} for a group string such as "bgc" (letters of GROUPS, any order)."""
    spec = str(spec).strip().lower()
    if not spec or any(ch not in GROUPS for ch in spec) or len(set(spec)) != len(spec):
        raise ValueError(f"augmentation pipeline {spec!r}: use distinct letters of {''.join(GROUPS)} "
                         f"(b blit, g geometric, c intensity, n corruption), e.g. bgc")
    return {t: (1.0 if any(t in GROUPS[ch] for ch in spec) else 0.0) for t in TRANSFORMS}
