"""CSV files of columns {name: values}: the text, and the file written atomically (dnnlib.fileutil), so a reader
never finds half a table under the final name."""

from dnnlib.fileutil import atomic_write_text


def csv_text(columns):
    """CSV of equally long columns {name: values}: a header line, then one row per index ('%.6g' for floats)."""
    names = list(columns)
    lengths = {len(columns[n]) for n in names}
    if len(lengths) > 1:
        raise ValueError(f"CSV columns differ in length: { {n: len(columns[n]) for n in names} }")
    n_rows = lengths.pop() if lengths else 0
    cell = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = [",".join(names)] + [",".join(cell(columns[n][i]) for n in names) for i in range(n_rows)]
    return "\n".join(rows) + "\n"


def write_csv(path, columns):
    """Write columns {name: values} to path as CSV (csv_text), atomically; returns path."""
    atomic_write_text(path, csv_text(columns))
    return path
