"""The options object: a dict whose keys are also attributes, JSON round-trippable."""

import json


class EasyDict(dict):
    """dict with attribute access; nested dicts become EasyDicts on load."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]

    @staticmethod
    def from_obj(obj):
        """Recursively convert dicts (e.g. parsed JSON) to EasyDicts."""
        if isinstance(obj, dict):
            return EasyDict({k: EasyDict.from_obj(v) for k, v in obj.items()})
        if isinstance(obj, list):
            return [EasyDict.from_obj(v) for v in obj]
        return obj

    def to_json(self, indent=2):
        return json.dumps(self, indent=indent, sort_keys=True, default=_json_default)

    @staticmethod
    def load_json(path):
        with open(path) as f:
            return EasyDict.from_obj(json.load(f))

    def save_json(self, path):
        from dnnlib.fileutil import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")


def _json_default(o):
    # numpy scalars/arrays and tuples appear in options; store them as plain JSON.
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
