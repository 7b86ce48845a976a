"""Demo driver (placeholder until the mayor lands): validate the example plans."""

from __future__ import annotations

import pathlib
import subprocess
import sys


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    code = 0
    for plan in sorted((root / "examples").glob("*.yaml")):
        print(f"$ swarm plan validate {plan.relative_to(root)}")
        code |= subprocess.call([sys.executable, "-m", "runner", "plan", "validate", str(plan)])
    return code


if __name__ == "__main__":
    sys.exit(main())
