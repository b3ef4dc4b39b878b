"""Command line: python -m studio {train,generate,eval,trace} DOMAIN [options]."""

from __future__ import annotations

import argparse
import shlex
import sys

from studio.cli_text import add_text_commands

NOT_READY = ("music", "handwriting", "speech")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m studio", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "generate", "eval", "trace"):
        domains = commands.add_parser(command).add_subparsers(dest="domain", required=True)
        add_text_commands(command, domains.add_parser("text"))
        for domain in NOT_READY:
            domains.add_parser(domain, help="not ready yet")
    args = parser.parse_args(argv)
    if args.domain in NOT_READY:
        print(f"The {args.domain} domain is not ready yet.", file=sys.stderr)
        return 2
    args.command_line = "python -m studio " + shlex.join(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
