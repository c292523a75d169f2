"""``python -m tools.sandbox FILE`` (or ``-`` for stdin): run one program, print the JSON result.

For operators trying their policy: the program runs exactly as the service would run it
(same defaults, every available layer). Exit status 0 when the program succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

from tools.sandbox import Sandbox, SandboxConfig


async def _run(code: str, timeout_s: float | None) -> dict[str, object]:
    async with Sandbox(SandboxConfig(workers=1)) as sandbox:
        result = await sandbox.run(code, timeout_s=timeout_s)
        return {**dataclasses.asdict(result), "layers": sandbox.layers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sandbox", description=__doc__)
    parser.add_argument("file", help="the program to run, or - for stdin")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock limit, seconds")
    args = parser.parse_args(argv)
    if args.file == "-":
        code = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as handle:
            code = handle.read()
    output = asyncio.run(_run(code, args.timeout))
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return 0 if output["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
