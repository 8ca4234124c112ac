"""Labels for conditional training, read from a CSV: a filename column plus categorical and continuous columns.

Encoding (the label vector c, c_dim long, described in the manifest so it can be decoded again):
categorical columns -> one-hot over their sorted categories; continuous columns -> z-scores with the
mean and standard deviation of the CSV. A subject id column (optional) is kept for splitting, not encoded.
"""

import csv
import os

import numpy as np

from dnnlib.errors import UserError

_FILENAME_GUESSES = ("filename", "file", "path", "image", "scan")
_SUBJECT_GUESSES = ("subject", "subject_id", "subjectid", "participant_id", "participant", "patient_id")
_NIFTI_EXTS = (".nii.gz", ".nii", ".mgz", ".mgh", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")


def _stem(name):
    base = os.path.basename(os.path.normpath(name))
    for ext in _NIFTI_EXTS:
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


class LabelTable:
    """Parsed CSV: schema (for the manifest) and lookup(path) -> (vector float32 [c_dim], subject or None)."""

    def __init__(self, path, filename_column=None, categorical=None, continuous=None, subject_column=None):
        self.path = str(path)
        try:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise UserError(f"--labels={self.path}: cannot read ({e})") from None
        if not rows:
            raise UserError(f"--labels={self.path}: no rows")
        header = list(rows[0].keys())
        lower = {h.lower(): h for h in header}
        fc = filename_column or next((lower[g] for g in _FILENAME_GUESSES if g in lower), None)
        if fc not in header:
            raise UserError(f"--labels={self.path}: no filename column (have {header}; name it with --filename_column)")
        sc = subject_column or next((lower[g] for g in _SUBJECT_GUESSES if g in lower), None)
        if sc is not None and sc not in header:
            raise UserError(f"--subject_column={sc}: not a column of {self.path} (have {header})")
        categorical, continuous = list(categorical or []), list(continuous or [])
        for c in categorical + continuous:
            if c not in header:
                raise UserError(f"--labels={self.path}: column {c!r} not found (have {header})")
        if not categorical and not continuous:
            # No columns named: numeric columns are continuous, the rest categorical.
            for c in header:
                if c in (fc, sc):
                    continue
                vals = [r[c] for r in rows if r[c] not in ("", None)]
                (continuous if vals and all(_is_number(v) for v in vals) else categorical).append(c)
        self.filename_column, self.subject_column = fc, sc
        self.columns, offset = [], 0
        for c in categorical:
            cats = sorted({r[c] for r in rows if r[c] not in ("", None)})
            self.columns.append(
                {"name": c, "type": "categorical", "categories": cats, "offset": offset, "size": len(cats)}
            )
            offset += len(cats)
        for c in continuous:
            try:
                vals = np.asarray([float(r[c]) for r in rows if r[c] not in ("", None)], np.float64)
            except ValueError:
                raise UserError(f"--labels={self.path}: column {c!r} is continuous but holds non-numbers") from None
            mean, std = (float(vals.mean()), float(vals.std())) if len(vals) else (0.0, 1.0)
            self.columns.append(
                {
                    "name": c,
                    "type": "continuous",
                    "mean": mean,
                    "std": std if std > 0 else 1.0,
                    "offset": offset,
                    "size": 1,
                }
            )
            offset += 1
        self.c_dim = offset
        self._rows = {}
        for r in rows:
            key = (r[fc] or "").strip()
            if key:
                for k in {os.path.normpath(key), os.path.basename(os.path.normpath(key)), _stem(key)}:
                    self._rows.setdefault(k, []).append(r)

    def schema(self):
        return {
            "source": os.path.abspath(self.path),
            "filename_column": self.filename_column,
            "subject_column": self.subject_column,
            "c_dim": self.c_dim,
            "columns": self.columns,
        }

    def find_row(self, path, root):
        rel = os.path.normpath(os.path.relpath(path, root))
        for key in (rel, os.path.basename(os.path.normpath(path)), _stem(path)):
            rows = self._rows.get(key)
            if rows:
                if len(rows) > 1:
                    raise UserError(f"{path}: {len(rows)} rows of {self.path} match it ({key!r})")
                return rows[0]
        raise UserError(f"{path}: no row in {self.path} (column {self.filename_column!r})")

    def encode(self, row, path):
        c = np.zeros([self.c_dim], np.float32)
        for col in self.columns:
            v = row.get(col["name"])
            if v in ("", None):
                raise UserError(f"{path}: label {col['name']!r} is empty in {self.path}")
            if col["type"] == "categorical":
                c[col["offset"] + col["categories"].index(v)] = 1.0
            else:
                c[col["offset"]] = (float(v) - col["mean"]) / col["std"]
        return c

    def lookup(self, path, root):
        row = self.find_row(path, root)
        subject = row.get(self.subject_column) if self.subject_column else None
        return self.encode(row, path), subject


def decode_labels(labels_schema, c):
    """Label vector -> {column: category or value}: the inverse of LabelTable.encode (for reports)."""
    out = {}
    c = np.asarray(c, dtype=np.float64)
    for col in labels_schema["columns"]:
        seg = c[col["offset"] : col["offset"] + col["size"]]
        if col["type"] == "categorical":
            out[col["name"]] = col["categories"][int(np.argmax(seg))]
        else:
            out[col["name"]] = float(seg[0] * col["std"] + col["mean"])
    return out
