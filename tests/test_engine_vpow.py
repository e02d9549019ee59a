"""The vectorisable power (engine.vpow): accuracy against np.power, numba == numpy bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ningbo_sd.engine import libm
from ningbo_sd.engine.vpow import NUMBA_SOURCE, exp_numpy, pow_numpy

numba = pytest.importorskip("numba")

EPS = np.finfo(float).eps

SPECIAL_BASES = [0.0, -0.0, -2.0, -2.0, -0.5, np.inf, -np.inf, np.nan, 5e-324, 1e-310, 2.0, 1e300]
SPECIAL_EXPONENTS = [2.0, -1.0, 3.0, 0.5, 2.0, 2.0, 3.0, 1.0, 0.5, 0.5, np.nan, 3.0]


@pytest.fixture(scope="module")
def kernels():
    """``_powf``/``_pow`` compiled from the kernel source, and a loop over ``_powf`` + fix-up."""
    src = (
        "import math\nimport numpy as np\nfrom numba import njit, types\n"
        "from numba.extending import intrinsic\n_INF = np.inf\n_NAN = np.nan\n"
        "_J = dict(nogil=True, error_model='numpy')\n"
        + NUMBA_SOURCE
        + """
@njit(**_J)
def two_pass(A, B, O):
    for s in range(A.shape[0]):
        O[s] = _powf(A[s], B[s])
    for s in range(A.shape[0]):
        if O[s] != O[s]:
            O[s] = A[s] ** B[s]


@njit(**_J)
def exp_two_pass(A, O):
    for s in range(A.shape[0]):
        O[s] = _expf(A[s])
    for s in range(A.shape[0]):
        if O[s] != O[s]:
            O[s] = math.exp(A[s])
"""
    )
    ns: dict = {}
    exec(compile(src, "vpow_kernels", "exec"), ns)  # our own source text, no model input
    return ns


def _draws(seed: int, n: int = 200_000):
    rng = np.random.default_rng(seed)
    a = np.exp(rng.uniform(-40.0, 40.0, n))
    b = rng.uniform(-4.0, 4.0, n)
    b[: n // 10] = np.round(b[: n // 10])  # integer exponents too
    return a, b


@pytest.mark.parametrize("seed", [0, 1])
def test_relative_error_within_documented_bound(seed):
    a, b = _draws(seed)
    got, ref = pow_numpy(a, b), np.power(a, b)
    bound = np.abs(b * np.log(a)) * 2 * EPS + 4 * EPS
    rel = np.abs(got - ref) / np.abs(ref)
    assert np.all(rel <= bound), float(np.max(rel / bound))
    # and close to correctly rounded for moderate arguments
    small = np.abs(b * np.log(a)) < 1.0
    assert np.median(rel[small]) <= EPS


def test_exact_cases():
    a = np.array([1.0, 2.0, 7.5, 1e-200, 3.0])
    b = np.array([3.7, 0.0, 0.0, 0.0, 1.0])
    assert pow_numpy(a, b).tolist() == [1.0, 1.0, 1.0, 1.0, 3.0]


def test_special_values_follow_ieee_as_the_c_library_gives_them():
    a, b = np.array(SPECIAL_BASES), np.array(SPECIAL_EXPONENTS)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(pow_numpy(a, b), libm.call("pow", a, b))
        np.testing.assert_array_equal(pow_numpy(a, b), np.power(a, b))  # IEEE: both agree


def test_overflow_and_underflow_follow_the_c_library():
    a = np.array([10.0, 10.0, 1e-5, 2.0, 2.0])
    b = np.array([400.0, -400.0, 80.0, 1023.9, -1074.5])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(pow_numpy(a, b), libm.call("pow", a, b))


def test_the_c_library_functions_are_the_ones_numba_calls():
    """numba lowers math.log to libm's log (as CPython's math does); numpy's SIMD ufuncs may
    differ from it in the last bit (AVX-512), so the numpy runtime calls libm itself."""
    import math

    rng = np.random.default_rng(8)
    x = rng.uniform(-30.0, 30.0, 3000)
    positive = np.abs(x) + 1e-3
    for name, reference, values in [
        ("log", math.log, positive),
        ("exp", math.exp, x),
        ("sin", math.sin, x),
        ("atan", math.atan, x),
        ("tanh", math.tanh, x),
        ("sinh", math.sinh, x),
    ]:
        got = libm.call(name, values)
        assert (
            got.view(np.int64).tolist()
            == np.array([reference(v) for v in values]).view(np.int64).tolist()
        ), name
    bases, exponents = positive, rng.uniform(-3.0, 3.0, 3000)
    got = libm.call("pow", bases, exponents)
    expected = np.array([math.pow(a, b) for a, b in zip(bases, exponents, strict=True)])
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize("seed", [2, 3])
def test_numba_equals_numpy_bit_for_bit(kernels, seed):
    a, b = _draws(seed, 20_000)
    a = np.concatenate([a, SPECIAL_BASES])
    b = np.concatenate([b, SPECIAL_EXPONENTS])
    out = np.empty_like(a)
    with np.errstate(all="ignore"):
        kernels["two_pass"](a, b, out)
        expect = pow_numpy(a, b)
        scalar = np.array([kernels["_pow"](x, y) for x, y in zip(a, b, strict=True)])
    np.testing.assert_array_equal(out.view(np.int64), expect.view(np.int64))
    np.testing.assert_array_equal(scalar.view(np.int64), expect.view(np.int64))


SPECIAL_EXP = [0.0, -0.0, 1.0, -1.0, 707.9, 708.0, 709.7, 710.0, -708.0, -745.1, -746.0, np.inf,
               -np.inf, np.nan, 1e-300, -1e-300]  # fmt: skip


def test_exp_within_a_few_ulp_and_special_values_follow_the_c_library():
    x = np.random.default_rng(4).uniform(-700.0, 700.0, 400_000)
    x[:1000] = np.random.default_rng(5).uniform(-1.0, 1.0, 1000)
    rel = np.abs(exp_numpy(x) - np.exp(x)) / np.exp(x)
    assert rel.max() <= 4 * EPS, float(rel.max() / EPS)
    special = np.array(SPECIAL_EXP)
    with np.errstate(all="ignore"):
        got, ref = exp_numpy(special), np.exp(special)
    np.testing.assert_allclose(got, ref, rtol=4 * EPS)
    far = np.abs(special) >= 708.0  # outside the fast path: the C library's result
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got[far], libm.call("exp", special[far]))


def test_exp_numba_equals_numpy_bit_for_bit(kernels):
    x = np.concatenate([np.random.default_rng(6).uniform(-720.0, 720.0, 20_000), SPECIAL_EXP])
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        kernels["exp_two_pass"](x, out)
        expect = exp_numpy(x)
        scalar = np.array([kernels["_exp"](v) for v in x])
    np.testing.assert_array_equal(out.view(np.int64), expect.view(np.int64))
    np.testing.assert_array_equal(scalar.view(np.int64), expect.view(np.int64))
