"""The ``pcnacycle`` command: a thin shell over the Python API.

Every sub-command parses its arguments, calls one API function and turns a
:class:`~pcnacycle.errors.PcnacycleError` into a one-line message and exit
status 2 (no traceback: the message already names what to fix).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import PcnacycleError

OVERRIDES_HELP = "config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_ITER 100 SOLVER.STEPS '[50]'"


def _cmd_train(args: argparse.Namespace) -> None:
    from .config import load_config
    from .train import train

    cfg = load_config(args.config, args.opts)
    final = train(cfg, args.output, resume=args.resume, progress=not args.quiet)
    print(final)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcnacycle", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train Mask R-CNN from a config",
                            description="Train Mask R-CNN. Outputs: config.yaml, split.json, metrics.jsonl, "
                                        "model_*.pt, model_final.pt, last_checkpoint, loss_curve.png, log.txt.")
    p.add_argument("--config", required=True, help="YAML file, or a shipped config name such as stage1_dsb2018_cpu")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("opts", nargs=argparse.REMAINDER, help=OVERRIDES_HELP)
    p.set_defaults(func=_cmd_train)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except PcnacycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
