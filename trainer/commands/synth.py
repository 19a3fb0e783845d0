"""`edge-inspect synth`: generate a synthetic inspection station (boards, labels, crops, config)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.synth.plan import DEFAULT_BOARDS
from trainer.synth.station import generate_station
from trainer.synth.variation import DOMAINS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="station folder to write")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same station (0)")
    parser.add_argument(
        "--boards", type=int, default=DEFAULT_BOARDS, help=f"board photos ({DEFAULT_BOARDS})"
    )
    parser.add_argument(
        "--shift",
        choices=list(DOMAINS),
        default="none",
        help="capture-domain shift of the val/test photos; train stays clean (none)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (up to 2)")


def run(args: argparse.Namespace) -> int:
    try:
        summary = generate_station(
            args.out, seed=args.seed, boards=args.boards, shift=args.shift, workers=args.workers
        )
    except (ValueError, FileExistsError) as exc:
        print(f"edge-inspect synth: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    return 0
