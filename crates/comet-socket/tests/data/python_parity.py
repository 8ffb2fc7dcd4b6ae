"""Generates python_parity.tsv: random JSON values as CPython writes them.

Each line: json.dumps(v, ensure_ascii=False, sort_keys=True), a tab, then json.dumps(str(v)) of
the value read back (so dict order is the sorted order). Run with python3 > python_parity.tsv.
"""
import json
import random
import struct

random.seed(2024)
CHARS = ['a', 'b', "'", '"', '\\', '\n', '\t', '\r', '\x00', '\x1f', '\x7f', '\xa0', 'é', 'ä',
         '\u2028', '\u200b', '😀', '\ue000', '\ufeff', ' ', 'x', 'Z', '\x85', '\U000E0041',
         '\u00ad', '\u3000', '\ufdd0', '\u0600']


def rstr():
    return ''.join(random.choice(CHARS) for _ in range(random.randint(0, 6)))


def rfloat():
    k = random.random()
    if k < 0.4:
        f = struct.unpack('d', struct.pack('Q', random.getrandbits(64)))[0]
        return 1.5 if f != f or f in (float('inf'), float('-inf')) else f
    if k < 0.7:
        return random.uniform(-1e6, 1e6)
    return random.choice([0.0, -0.0, 1e16, 1e15, 1e-4, 1e-5, 123.456, 1e300, 5e-324, 2.5,
                          100.0, 0.1, 1e20, 9007199254740993.0])


def rval(depth=0):
    k = random.random()
    if depth > 2 or k < 0.5:
        c = random.randint(0, 5)
        if c == 0:
            return None
        if c == 1:
            return random.choice([True, False])
        if c == 2:
            return random.randint(-2**63, 2**64 - 1)
        if c == 3:
            return rfloat()
        return rstr()
    if k < 0.75:
        return [rval(depth + 1) for _ in range(random.randint(0, 3))]
    return {rstr(): rval(depth + 1) for _ in range(random.randint(0, 3))}


for _ in range(600):
    dumped = json.dumps(rval(), ensure_ascii=False, sort_keys=True)
    print(dumped + '\t' + json.dumps(str(json.loads(dumped))))
