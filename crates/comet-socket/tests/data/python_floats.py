"""Generates python_floats.tsv: doubles and CPython's repr of each.

Each line: the double's bits as 16 hex digits, a tab, repr(f). Random bit patterns, values near
the switch between positional and exponent layout, and values exactly halfway between two
shortest candidates (CPython picks the even digit; a writer that rounds half up does not).
Run with python3 > python_floats.tsv.
"""
import random
import struct

random.seed(11)


def bits(f):
    return struct.unpack('<Q', struct.pack('<d', f))[0]


values = []
for _ in range(1500):
    f = struct.unpack('<d', struct.pack('<Q', random.getrandbits(64)))[0]
    if f == f:
        values.append(f)
for _ in range(500):
    # Whole numbers plus a quarter above 2**48: 17 significant digits, the last a 5 — a tie.
    values.append(float(random.randint(2**48, 2**50)) + random.choice([0.25, 0.75]))
for _ in range(500):
    m = random.randint(1, 10**17)
    e = random.randint(-30, 30)
    values.append(float(f'{m}e{e - 16}'))
values += [0.0, -0.0, 1e16, 1e15, 9999999999999998.0, 1e-4, 1e-5, 9.999999999999999e-05,
           5e-324, 1.7976931348623157e308, float('inf'), float('-inf')]
for f in values:
    print(f'{bits(f):016x}\t{f!r}')
