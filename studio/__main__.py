"""Command line: python -m studio {train,generate,eval,trace,explain,probe,intervene,compare,onnx} DOMAIN.

Every domain of studio.domains.ALL gets each command. `trace` (teacher-force a file, keep the
gates), `explain` (why a step came out), `probe` (which units track a feature), `intervene`
(switch units off, compare), `compare` (CKA between layers or models) and `onnx` (export a sampling
step, studio.onnx_export) need only the contract and
are the same for all (studio.cli_common, studio.cli_experiments); train, generate and eval are the
domain's cli.py. `library` (kept generations) and `lab` (RNN, GRU and LSTM side by side) are not per
domain: python -m studio library -h, python -m studio lab -h."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from pathlib import Path

from studio import cli_common, cli_experiments, onnx_export
from studio.domains import ALL

COMMANDS = ("train", "generate", "eval", "trace", "explain", "probe", "intervene", "compare", "onnx")
# commands that need only the contract, the same for every domain: where their flags are added
SHARED = {
    "trace": cli_common.add_trace_command,
    "explain": cli_common.add_explain_command,
    "probe": cli_experiments.add_probe_command,
    "intervene": cli_experiments.add_intervene_command,
    "compare": cli_experiments.add_compare_command,
    "onnx": onnx_export.add_command,
}


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its meaning, unless the meaning already says it or there is none."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # commands that are not per domain have their own parsers
    if argv[:1] == ["library"]:  # kept generations: list, search, replay, ...
        from studio.library import cli as library_cli

        return library_cli.main(argv[1:])
    if argv[:1] == ["import"]:  # a Keras or PyTorch model opened as a studio model
        from studio import import_cli

        return import_cli.main(argv[1:])
    if argv[:1] == ["lab"]:  # the "Why LSTM" lab: RNN, GRU and LSTM side by side
        from studio.lab import cli as lab_cli

        return lab_cli.main(argv[1:])
    # allow_abbrev=False everywhere: an abbreviation would be taken for whichever flag it starts
    # (`--data` for `--data-dir`), so a flag is given whole or refused
    parser = argparse.ArgumentParser(prog="python -m studio", description=__doc__, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("library", allow_abbrev=False, help="kept generations: list, search, show, replay, export (see "
                                                            "library -h)")
    commands.add_parser("import", allow_abbrev=False, help="open a Keras or PyTorch LSTM as a studio model (see "
                                                           "import -h)")
    commands.add_parser("lab", allow_abbrev=False, help="the 'Why LSTM' lab: RNN, GRU and LSTM trained side by side "
                                                        "(see lab -h)")
    for command in COMMANDS:
        domains = commands.add_parser(command, allow_abbrev=False).add_subparsers(dest="domain", required=True)
        for domain in ALL:
            domain_parser = domains.add_parser(domain.NAME, formatter_class=DefaultsHelp, allow_abbrev=False)
            if command in SHARED:
                SHARED[command](domain_parser, domain)
            else:
                importlib.import_module(f"{domain.__name__}.cli").add_commands(command, domain_parser)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):  # a domain without this command
        print(f"'{args.command} {args.domain}' is not available.", file=sys.stderr)
        return 2
    args.command_line = "python -m studio " + shlex.join(argv)
    if args.command == "train" and (Path(args.out).is_dir() or args.out.endswith(("/", os.sep))):
        # a folder: the checkpoint is named after it (runs/mine/ -> runs/mine/mine.safetensors + .json)
        args.out = str(Path(args.out) / Path(args.out).name)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
