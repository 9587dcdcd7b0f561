"""The backends' agreement tolerance, shared by the equivalence tests (issue 7: float64 ≤ 1e-10 relative,
float32 ≤ 1e-5)."""
import numpy as np


def close(actual, expected):
    """float64: rtol 1e-10; float32: 1e-5; both also relative to the largest magnitude."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    tol = 1e-10 if expected.dtype == np.float64 else 1e-5
    scale = max(float(np.abs(expected).max(initial=0)), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)
