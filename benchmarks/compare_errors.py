"""Two readings of the same numbers compared, number by number.

    python benchmarks/numbers_accuracy.py --data-dir ../shared/data/mnist --seed 2 --errors > before.txt
    python benchmarks/numbers_accuracy.py --data-dir ../shared/data/mnist --seed 2 --errors \
        --checkpoint runs/new/best.pt > after.txt
    python benchmarks/compare_errors.py before.txt after.txt

The same seed draws the same numbers, so two runs of `numbers_accuracy.py --errors` (two
models, or the code before and after a change) can be compared paired: which numbers only the
first reads right, which only the second. A change of half a point on 1,000 numbers is within
what chance gives two models alike; 12 numbers mended and 6 lost tells more than 96.70% and
97.30%, and the lists say what kind of writing each gains or loses.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ERROR = re.compile(r"\s*#(\S+): (\d+) read as (.*)$")
ALL = re.compile(r"\s*all\s+(\S+%)\s+\((\d+)/(\d+)")


def read_errors(path: Path) -> tuple[dict[str, str], str | None]:
    """The numbers a run read wrong ({name: "truth read as ..."}) and its 'all' line's share."""
    errors, share = {}, None
    for line in path.read_text().splitlines():
        if m := ERROR.match(line):
            read = m.group(3).strip()
            if not read or read.startswith("("):  # nothing read: "not a digit"
                read = f"(not a digit) {read}".strip()
            errors[m.group(1)] = f"{m.group(2)} read as {read}"
        elif (m := ALL.match(line)) and share is None:
            share = f"{m.group(1)} ({m.group(2)}/{m.group(3)})"
    return errors, share


def _order(name: str) -> list[int]:
    return [int(part) for part in re.findall(r"\d+", name)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("first", type=Path, help="the output of numbers_accuracy.py --errors")
    ap.add_argument("second", type=Path, help="another, of the same seeds and -n")
    args = ap.parse_args()
    for path in (args.first, args.second):
        if not path.is_file():
            sys.exit(f"{path}: no such file")
    first, first_share = read_errors(args.first)
    second, second_share = read_errors(args.second)
    if first_share is None or second_share is None:
        sys.exit("each file must be a whole numbers_accuracy.py output (its 'all' line)")
    print(f"{args.first}: {first_share}, {len(first)} wrong")
    print(f"{args.second}: {second_share}, {len(second)} wrong")
    for title, wrong, right in (("read right only by the second", first, second),
                                ("read right only by the first", second, first)):
        only = sorted(set(wrong) - set(right), key=_order)
        print(f"{title}: {len(only)}")
        for name in only:
            print(f"  #{name}: {wrong[name]}")


if __name__ == "__main__":
    main()
