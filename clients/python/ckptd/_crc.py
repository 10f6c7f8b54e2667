"""CRC-32C (Castagnoli), the checksum of every chunk and of a Save stream's trailer.

The bytes are checksummed by a C implementation: the ``crc32c`` module (Debian's
python3-crc32c, or ``pip install crc32c``) or ``google-crc32c``. A pure-Python fallback
keeps the client working without either, at a few MB/s, and warns once.

``combine`` joins the CRCs of two adjacent byte ranges without reading the bytes again:
a Save computes each chunk's CRC once and derives the stream's running CRC from it.
"""

from __future__ import annotations

import functools
import warnings

_POLY = 0x82F63B78  # CRC-32C, reflected

try:  # Debian python3-crc32c / PyPI crc32c
    import crc32c as _crc32c_mod

    def crc32c(data, value: int = 0) -> int:
        """CRC-32C of ``data`` (any buffer), continuing from ``value``."""
        return _crc32c_mod.crc32c(data, value)

    IMPLEMENTATION = "crc32c"
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        import google_crc32c as _google_crc32c

        def crc32c(data, value: int = 0) -> int:
            """CRC-32C of ``data`` (any buffer), continuing from ``value``."""
            return _google_crc32c.extend(value, bytes(data) if not isinstance(data, bytes) else data)

        IMPLEMENTATION = "google_crc32c"
    except ImportError:
        _TABLE = []
        for _i in range(256):
            _c = _i
            for _ in range(8):
                _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
            _TABLE.append(_c)
        _warned = False

        def crc32c(data, value: int = 0) -> int:
            """CRC-32C of ``data`` (any buffer), continuing from ``value``. Slow fallback."""
            global _warned
            if not _warned:
                _warned = True
                warnings.warn(
                    "ckptd: no C implementation of CRC-32C found; install python3-crc32c "
                    "(Debian) or `pip install crc32c` - checksums are very slow without it",
                    RuntimeWarning,
                    stacklevel=2,
                )
            crc = value ^ 0xFFFFFFFF
            table = _TABLE
            for b in memoryview(data).cast("B"):
                crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
            return crc ^ 0xFFFFFFFF

        IMPLEMENTATION = "python"


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (both reflected)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list:
    table = []
    p = 1 << 30  # x^1
    table.append(p)
    for _ in range(1, 32):
        p = _multmodp(p, p)
        table.append(p)
    return table


_X2N = _x2n_table()


@functools.lru_cache(maxsize=64)
def _shift_operator(length: int) -> int:
    """x^(8 * length) modulo the polynomial: appending ``length`` zero bytes."""
    p = 1 << 31  # x^0
    k = 3
    n = length
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32C of A + B, given crc1 = CRC(A), crc2 = CRC(B) and len(B)."""
    return _multmodp(_shift_operator(length2), crc1) ^ crc2
