"""generation/restoration/spec.py: the degradation spec parser, its round trip and its errors."""

import json

import pytest

from generation.restoration.spec import parse_spec

SPEC_CASES = [
    # spec, network spacing, expected describe() without "spec" (ops, mask, noise_sigma)
    ("", None, ([], None, None)),
    ("none", None, ([], None, None)),
    ("native", None, ([], None, None)),
    ("thicken:axis=2,factor=4", None,
     ([{"op": "thicken", "axis": 2, "factor": 4, "profile": "box", "start": 1.5}], None, None)),
    ("thicken:axis=2,factor=4,profile=gaussian;mask=path.nii.gz;noise=0.05", None,
     ([{"op": "thicken", "axis": 2, "factor": 4, "profile": "gaussian", "start": 1.5, "fwhm_vox": 4,
        "truncate": 3}], {"path": "path.nii.gz", "invert": False}, 0.05)),
    (" thicken: axis=0, mm=6.5 ; noise:sigma=0.1 ", (2.0, 1.0, 1.0),
     ([{"op": "thicken", "axis": 0, "factor": 3.25, "profile": "box", "start": 1.125}], None, 0.1)),
    ("thicken:axis=1,factor=3,profile=gaussian,fwhm_mm=3,truncate=2,start=2,count=3", (1.0, 0.5, 1.0),
     ([{"op": "thicken", "axis": 1, "factor": 3, "profile": "gaussian", "start": 2, "fwhm_vox": 6,
        "truncate": 2, "count": 3}], None, None)),
    ("mask:path=C:/scans/lesion.nii.gz,invert=true", None,
     ([], {"path": "C:/scans/lesion.nii.gz", "invert": True}, None)),
    ("mask=C:\\scans\\brain mask.nii.gz", None, ([], {"path": "C:\\scans\\brain mask.nii.gz", "invert": False}, None)),
    ("thicken:axis=0,factor=2;thicken:axis=2,factor=1.5", None,
     ([{"op": "thicken", "axis": 0, "factor": 2, "profile": "box", "start": 0.5},
       {"op": "thicken", "axis": 2, "factor": 1.5, "profile": "box", "start": 0.25}], None, None)),
]


@pytest.mark.parametrize("spec,spacing,want", SPEC_CASES)
def test_parse_spec(spec, spacing, want):
    deg = parse_spec(spec, network_spacing=spacing)
    d = deg.describe()
    assert (d["ops"], d["mask"], d["noise_sigma"]) == want
    assert json.loads(json.dumps(d)) == d
    again = parse_spec(d["spec"])  # the recorded spec parses back to the same degradation
    assert again.describe() == d


SPEC_ERRORS = [
    ("thicken:factor=4", "part 1 .*needs axis"),
    ("thicken:axis=3,factor=2", "axis='3' is not 0, 1 or 2"),
    ("thicken:axis=x,factor=2", "axis='x'"),
    ("thicken:axis=0", "exactly one of factor= .* or mm="),
    ("thicken:axis=0,factor=2,mm=4", "exactly one of"),
    ("thicken:axis=0,mm=4", "needs the network grid's spacing"),
    ("thicken:axis=0,factor=abc", "factor='abc' is not a number"),
    ("thicken:axis=0,factor=0.5", "factor must be a number >= 1"),
    ("thicken:axis=0,factor=nan", "not finite"),
    ("thicken:axis=0,factor=2,profile=sinc", "profile='sinc'"),
    ("thicken:axis=0,factor=2,fwhm=3", "fwhm only applies to profile=gaussian"),
    ("thicken:axis=0,factor=2,thickness=3", r"unknown key\(s\) \['thickness'\]"),
    ("thicken:axis=0,factor=2,count=2.5", "count='2.5' is not an integer"),
    ("thicken:axis=0,factor=2,axis=1", "'axis' given twice"),
    ("thicken:axis=0,factor=2,gaussian", "'gaussian' is not key=value"),
    ("thicken=axis=0", "write thicken:"),
    ("thicken:axis=0,factor=2;thicken:axis=0,factor=3", "part 2 .*axis 0 is already thickened"),
    ("noise=0", "part 1 .*must be positive"),
    ("noise=-1", "must be positive"),
    ("noise=loud", "noise='loud' is not a number"),
    ("noise=0.1;noise=0.2", "part 2 .*only one noise level"),
    ("noise:level=0.1", "noise=SIGMA or noise:sigma=SIGMA"),
    ("mask=", "needs a file path"),
    ("mask:invert=1", "needs a file path"),
    ("mask:path=a.nii,invert=maybe", "not a boolean"),
    ("mask=a.nii;mask=b.nii", "only one mask"),
    ("blur:sigma=2", "unknown forward model 'blur'"),
    ("thicken:axis=0,factor=2;;noise=0.1", "part 2 .* is empty"),
    ("gibberish", "part 1 'gibberish': expected thicken"),
]


@pytest.mark.parametrize("spec,message", SPEC_ERRORS)
def test_parse_spec_errors_name_the_bad_part(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec, network_spacing=None)
