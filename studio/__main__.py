"""Command line: python -m studio {train,generate,eval,trace} DOMAIN [options]."""

from __future__ import annotations

import argparse
import shlex
import sys

from studio.cli_handwriting import add_handwriting_commands
from studio.cli_music import add_music_commands
from studio.cli_speech import add_speech_commands
from studio.cli_text import add_text_commands

ADD_COMMANDS = {
    "text": add_text_commands,
    "music": add_music_commands,
    "handwriting": add_handwriting_commands,
    "speech": add_speech_commands,
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m studio", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("train", "generate", "eval", "trace"):
        domains = commands.add_parser(command).add_subparsers(dest="domain", required=True)
        for domain, add_commands in ADD_COMMANDS.items():
            add_commands(command, domains.add_parser(domain))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):  # a domain without this command (e.g. `trace` for some)
        print(f"'{args.command} {args.domain}' is not available.", file=sys.stderr)
        return 2
    args.command_line = "python -m studio " + shlex.join(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
