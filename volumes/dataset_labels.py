"""Labels for conditional training, read from a CSV: a filename column plus categorical and continuous columns.

Encoding (the label vector c, c_dim long, described in the manifest so it can be decoded again):
categorical columns -> one-hot over their sorted categories; continuous columns -> z-scores. Categories and
statistics come from the rows that belong to the dataset's scans (fit()), never from rows without a scan. A
subject id column (optional) is kept for splitting, not encoded.

Values are checked, never silently re-encoded: a continuous value must be a finite number, and a column
that is mostly numbers but holds some text is refused rather than turned into categories. Cells listed in
missing_values (e.g. "n/a") count as empty: a scan whose label is missing is skipped with a reason.
"""

import copy
import csv
import math
import os

import numpy as np

from dnnlib.errors import InputError
from volumes.volume_io import file_stem

_FILENAME_GUESSES = ("filename", "file", "path", "image", "scan")
_SUBJECT_GUESSES = ("subject", "subject_id", "subjectid", "participant_id", "participant", "patient_id")


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


class LabelTable:
    """Parsed CSV: schema (for the manifest) and lookup(path) -> (vector float32 [c_dim], subject or None).

    ValueError (naming the CSV, the row and column, or the scan) for a table that cannot be used or a scan
    without a usable row; OSError when the file cannot be opened. The table is fitted to all its rows when
    made; create_dataset refits it to the rows its scans matched.
    """

    def __init__(self, path, filename_column=None, categorical=None, continuous=None, subject_column=None,
                 missing_values=()):
        self.path = str(path)
        self.missing_values = {str(v).strip() for v in missing_values if str(v).strip()}
        try:
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                rows = []
                for r in reader:
                    r["__line__"] = reader.line_num  # line of the CSV, for messages
                    rows.append(r)
        except (UnicodeDecodeError, csv.Error) as e:
            raise InputError(f"{self.path}: not a readable CSV label table ({e})") from None
        if not rows:
            raise InputError(f"{self.path}: the label table has no rows")
        header = [h for h in rows[0] if h not in ("__line__", None)]
        lower = {h.lower(): h for h in header}
        fc = filename_column or next((lower[g] for g in _FILENAME_GUESSES if g in lower), None)
        if fc not in header:
            wanted = repr(fc) if fc else f"(looked for {', '.join(_FILENAME_GUESSES)})"
            raise InputError(f"{self.path}: no file name column {wanted}; the columns are {header}")
        sc = subject_column or next((lower[g] for g in _SUBJECT_GUESSES if g in lower), None)
        if sc is not None and sc not in header:
            raise InputError(f"subject column {sc!r} is not a column of {self.path} (have {header})")
        categorical, continuous = list(categorical or []), list(continuous or [])
        for c in categorical + continuous:
            if c not in header:
                raise InputError(f"{self.path}: column {c!r} not found (have {header})")
        self.rows = rows
        self.filename_column, self.subject_column = fc, sc
        if not categorical and not continuous:
            # No columns named: numeric columns are continuous, the rest categorical.
            for c in header:
                if c not in (fc, sc):
                    (continuous if self._numeric_column(c) else categorical).append(c)
        for c in continuous:
            for r in rows:
                self._number(r, c)  # every value of a continuous column is a finite number (or missing)
        self._kinds = [(c, "categorical") for c in categorical] + [(c, "continuous") for c in continuous]
        self._rows = {}
        for r in rows:
            key = (r[fc] or "").strip()
            if key:
                for k in {os.path.normpath(key), os.path.basename(os.path.normpath(key)), file_stem(key)}:
                    self._rows.setdefault(k, []).append(r)
        self.fit(rows)

    def _missing(self, v):
        return v is None or v.strip() == "" or v.strip() in self.missing_values

    def _where(self, r, c):
        return f"{self.path}: row {r['__line__']} ({self.filename_column} {r.get(self.filename_column)!r}), " \
               f"column {c!r}"

    def _number(self, r, c):
        """The finite float in row r, column c; None when missing; ValueError naming the row and column else."""
        v = r.get(c)
        if self._missing(v):
            return None
        try:
            x = float(v)
        except ValueError:
            raise InputError(f"{self._where(r, c)}: {v!r} is not a number (the column holds numbers; list "
                             f"{v.strip()!r} as a missing value, or make the column categorical)") from None
        if not math.isfinite(x):
            raise InputError(f"{self._where(r, c)}: {v!r} is not a finite number; labels must be finite")
        return x

    def _numeric_column(self, c):
        """True for numbers only, False for text only; a ValueError for a mix. Mostly numbers with some text is
        a typo or an unlisted missing-value code, and a stray number among text is no clearer: neither is ever
        turned into categories silently; the column must be named as categorical or continuous."""
        vals = [(r, r[c]) for r in self.rows if not self._missing(r.get(c))]
        text = [(r, v) for r, v in vals if not _is_number(v)]
        numbers = [(r, v) for r, v in vals if _is_number(v)]
        if not text or not numbers:
            return bool(numbers)
        odd, kind, usual = (text, "text", "numbers") if len(text) <= len(numbers) else (numbers, "a number", "text")
        r, v = odd[0]
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise InputError(f"{self._where(r, c)}: {v!r} is {kind} in a column of {usual}{more}; list it as a missing "
                         "value, or name the column as categorical or continuous")

    def fit(self, rows):
        """Categories and z-score statistics from `rows` (the rows of the scans in the dataset)."""
        self.columns, offset = [], 0
        for c, kind in self._kinds:
            if kind == "categorical":
                cats = sorted({r[c] for r in rows if not self._missing(r.get(c))})
                self.columns.append(
                    {"name": c, "type": "categorical", "categories": cats, "offset": offset, "size": len(cats)}
                )
                offset += len(cats)
            else:
                vals = np.asarray([x for x in (self._number(r, c) for r in rows) if x is not None], np.float64)
                mean, std = (float(vals.mean()), float(vals.std())) if len(vals) else (0.0, 1.0)
                self.columns.append(
                    {"name": c, "type": "continuous", "mean": mean, "std": std if std > 0 else 1.0,
                     "offset": offset, "size": 1}
                )
                offset += 1
        self.c_dim = offset
        self.num_rows_fitted = len(rows)
        return copy.deepcopy(self.columns)

    def unmatched(self, matched_rows):
        """File names of the rows not among matched_rows (rows of the CSV that belong to no scan)."""
        ids = {id(r) for r in matched_rows}
        return [r[self.filename_column] for r in self.rows if id(r) not in ids]

    def schema(self):
        return {
            "source": os.path.abspath(self.path),
            "filename_column": self.filename_column,
            "subject_column": self.subject_column,
            "c_dim": self.c_dim,
            "columns": self.columns,
            "rows_used": self.num_rows_fitted,
            "rows_in_table": len(self.rows),
        }

    def find_row(self, path, root):
        rel = os.path.normpath(os.path.relpath(path, root))
        for key in (rel, os.path.basename(os.path.normpath(path)), file_stem(path)):
            rows = self._rows.get(key)
            if rows:
                if len(rows) > 1:
                    raise InputError(f"{path}: {len(rows)} rows of {self.path} match it ({key!r})")
                return rows[0]
        raise InputError(f"{path}: no row in {self.path} (column {self.filename_column!r})")

    def check_row(self, row, path):
        """ValueError naming the scan when a label of its row is missing."""
        for c, _ in self._kinds:
            if self._missing(row.get(c)):
                shown = "empty" if not (row.get(c) or "").strip() else f"missing ({row[c].strip()!r})"
                raise InputError(f"{path}: label {c!r} is {shown} in {self.path} row {row['__line__']}")

    def encode(self, row, path):
        self.check_row(row, path)
        c = np.zeros([self.c_dim], np.float32)
        for col in self.columns:
            v = row[col["name"]]
            if col["type"] == "categorical":
                if v not in col["categories"]:
                    raise InputError(f"{path}: category {v!r} of {col['name']!r} is not among the fitted ones")
                c[col["offset"] + col["categories"].index(v)] = 1.0
            else:
                c[col["offset"]] = (self._number(row, col["name"]) - col["mean"]) / col["std"]
        return c

    def subject(self, row):
        return row.get(self.subject_column) if self.subject_column else None

    def lookup(self, path, root):
        row = self.find_row(path, root)
        return self.encode(row, path), self.subject(row)


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
