"""The covariates of a dataset's volumes, from either place a dataset can keep them.

1. The manifest's files[i].covariates ({name: value}) with a top-level "covariates" description
   ({name: {"kind": "continuous" | "categorical", "description": ...}}): the demo cohort's known covariates.
2. Else the conditional labels (manifest["labels"], written by dataset_tool.py from a CSV): each volume's label
   vector decoded with the schema (volumes.dataset_labels.decode_labels): one-hot columns back to their category,
   z-scores back to the column's values.
A dataset with neither has no covariates (embed still works; regress and trajectory then refuse).
"""

import math

from dnnlib.errors import InputError
from volumes.dataset_labels import decode_labels

KINDS = ("continuous", "categorical")


def covariate_kinds(manifest):
    """{name: kind} of the covariates the manifest describes (files' covariates first, else the label columns)."""
    described = manifest.get("covariates")
    if isinstance(described, dict) and described:
        out = {}
        for name, d in described.items():
            kind = (d or {}).get("kind", "continuous") if isinstance(d, dict) else "continuous"
            if kind not in KINDS:
                raise InputError(f"the manifest describes covariate {name!r} as kind {kind!r}; expected one of "
                                 f"{', '.join(KINDS)}")
            out[str(name)] = kind
        return out
    labels = manifest.get("labels")
    if isinstance(labels, dict) and labels.get("columns"):
        return {c["name"]: "categorical" if c["type"] == "categorical" else "continuous" for c in labels["columns"]}
    return {}


def volume_covariates(manifest, index, label=None):
    """{name: value} of volume `index`: files[i].covariates when the manifest lists them, else the decoded label
    vector `label` (None for an unlabelled dataset -> {})."""
    for f in manifest.get("files") or []:
        if int(f.get("index", -1)) == int(index) and isinstance(f.get("covariates"), dict):
            return dict(f["covariates"])
    labels = manifest.get("labels")
    if label is not None and isinstance(labels, dict) and labels.get("columns"):
        return decode_labels(labels, label)
    return {}


def numeric_value(name, value, where):
    """The float a regression uses for `value` of covariate `name`; ValueError naming `where` for text."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        x = float(value)
    else:
        try:
            x = float(str(value).strip())
        except ValueError:
            raise InputError(f"{where}: covariate {name!r} holds text ({value!r}); a regression needs numbers: "
                             "code it as numbers (e.g. 0/1 for two groups)") from None
    if not math.isfinite(x):
        raise InputError(f"{where}: covariate {name!r} has the value {value!r}; it must be a finite number")
    return x


def check_names(names, kinds, where):
    """ValueError naming `where` when a covariate is not in the cohort."""
    for n in names:
        if n not in kinds:
            have = ", ".join(sorted(kinds)) or "none: the dataset has neither files[i].covariates nor labels"
            raise InputError(f"{where}: covariate {n!r} is not in the cohort (have {have})")
