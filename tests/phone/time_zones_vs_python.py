#!/usr/bin/python3
# osvi-phone.so's osvi_phone_time_zones against phonenumbers.timezone.time_zones_for_number, the python
# package its table is generated from, on random numbers shaped like each country's examples.
# Usage: time_zones_vs_python.py <osvi-phone.so> [count]
import ctypes
import random
import sys

import phonenumbers
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number


def main():
    lib = ctypes.CDLL(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    out = ctypes.create_string_buffer(4096)
    err = ctypes.create_string_buffer(256)
    rng = random.Random(1)  # a failure reproduces
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    mismatches = nonempty = 0
    for _ in range(count):
        cc = rng.choice(codes)
        region = rng.choice(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc])
        example = None
        if region != "001":
            example = phonenumbers.example_number_for_type(region, rng.randrange(11))
        if example is not None and rng.random() < 0.7:
            # A real example with its last digits changed: mostly valid numbers, of every type.
            nsn = str(example.national_number)
            k = rng.randint(0, min(4, len(nsn)))
            nsn = nsn[: len(nsn) - k] + "".join(rng.choice("0123456789") for _ in range(k))
        else:
            nsn = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 12)))
        e164 = f"+{cc}{nsn}"
        try:
            want = [z for z in time_zones_for_number(phonenumbers.parse(e164, None)) if z != UNKNOWN_TIMEZONE]
        except phonenumbers.NumberParseException:
            want = []
        n = lib.osvi_phone_time_zones(e164.encode(), out, len(out), err, len(err))
        if n < 0:
            sys.exit(f"{e164}: error {n}: {err.value.decode()}")
        got = out.value.decode().split("\n") if n > 0 else []
        if got != want:
            mismatches += 1
            print(f"{e164}: python {want}, osvi-phone {got}")
        nonempty += bool(want)
    print(f"{count} numbers, {nonempty} with zones, {mismatches} mismatches")
    if mismatches or nonempty < count // 5:
        sys.exit(1)


if __name__ == "__main__":
    main()
