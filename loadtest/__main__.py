"""``python -m loadtest --sessions 30 --json OUT``: the classroom load test (issue 8)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadtest.classroom import BENCH_HELP, bench_arguments, bench_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=BENCH_HELP)
    bench_arguments(parser)
    args = parser.parse_args(argv)
    result = bench_run(args)
    text = json.dumps(result, indent=1, default=str)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
        print(f"wrote {args.json_out}")
    else:
        print(text)
    return 0 if result["all_finished"] and result["none_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
