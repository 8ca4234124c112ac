"""generation/restoration/masks.py: mask files read onto the target grid and into a degradation."""

import numpy as np
import pytest

from generation.restoration.masks import read_mask
from generation.restoration.spec import parse_spec


def test_read_mask_and_load_into_degradation(tmp_path):
    import nibabel as nib

    aff = np.diag([1.0, 1.0, 4.0, 1.0])
    lesion = np.zeros((4, 5, 3), np.float32)
    lesion[1:3, 2:4, 1] = 1
    path = str(tmp_path / "lesion.nii.gz")
    nib.save(nib.Nifti1Image(lesion, aff), path)
    m = read_mask(path, shape=(4, 5, 3), affine=aff)
    np.testing.assert_array_equal(m.weights, lesion)
    inv = parse_spec(f"mask:path={path},invert=1").load_mask(shape=(4, 5, 3), affine=aff)
    np.testing.assert_array_equal(inv.weights(), 1 - lesion)
    assert inv.describe()["mask"]["fraction_compared"] == pytest.approx(1 - 4 / 60)
    with pytest.raises(ValueError, match="lesion.nii.gz: mask has shape"):
        read_mask(path, shape=(4, 5, 4))
    with pytest.raises(ValueError, match="lesion.nii.gz: mask affine"):
        read_mask(path, affine=np.eye(4))
