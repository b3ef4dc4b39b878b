"""python -m studio library {list,search,show,replay,export,rate,tag,note,delete,share,unshare}: the local
owner's library (records from `generate ... --save`). `list` and `search` print one line per record
starting with its id; `replay` makes a record again and ends with `reproduced: yes` or
`reproduced: no (WHY)`."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from studio import owners
from studio.library import LibraryFull, NotFound, as_json, open_store, replay
from studio.library.datasets import export_jsonl, export_training_files
from studio.library.schema import KINDS

STARS = "★"


def _date(text: str) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None


def _rating(text: str) -> int:
    if text not in {"1", "2", "3", "4", "5"}:
        raise argparse.ArgumentTypeError("a rating is 1 to 5")
    return int(text)


def _filters(parser) -> None:
    parser.add_argument("--domain", help="only this domain's records")
    parser.add_argument("--model", help="only this model's records (its name)")
    parser.add_argument("--kind", choices=KINDS, help="only records of this kind (generation, model, lab run)")
    parser.add_argument("--min-rating", type=_rating, help="only records rated at least this (1-5)")
    parser.add_argument("--since", type=_date, help="only records made on or after this date (YYYY-MM-DD)")
    parser.add_argument("--until", type=_date, help="only records made before this date (YYYY-MM-DD)")
    parser.add_argument("--like", type=int, metavar="ID", help="rank by likeness to this record's output (more "
                                                               "like this)")
    parser.add_argument("--limit", type=int, default=50, help="at most this many records (default 50)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio library", description=__doc__, allow_abbrev=False)
    parser.add_argument("--db", help="the library database (default: LSTM_STUDIO_HOME/library/library.sqlite3)")
    commands = parser.add_subparsers(dest="action", required=True)
    _filters(commands.add_parser("list", help="records, newest first", allow_abbrev=False))
    search = commands.add_parser("search", help="keyword search over prompt, output, tags and note", allow_abbrev=False)
    search.add_argument("query", nargs="?", default="", help="words that must all occur (word* for a prefix)")
    _filters(search)
    for name, help_text in (("show", "one record: settings, files, rating"), ("replay", "make a record again and "
                            "check it is the same"), ("delete", "remove a record and its files"),
                            ("share", "make a record's share token (its ?run= link)"), ("unshare", "revoke the link")):
        commands.add_parser(name, help=help_text, allow_abbrev=False).add_argument("id", type=int)
    rate = commands.add_parser("rate", help="1-5 stars (0 clears)", allow_abbrev=False)
    rate.add_argument("id", type=int)
    rate.add_argument("stars", type=int, choices=range(0, 6))
    tag = commands.add_parser("tag", help="replace a record's tags", allow_abbrev=False)
    tag.add_argument("id", type=int)
    tag.add_argument("tags", nargs="*")
    note = commands.add_parser("note", help="set a record's note", allow_abbrev=False)
    note.add_argument("id", type=int)
    note.add_argument("note", help="the note (\"\" clears it)")
    export = commands.add_parser("export", help="the search result as JSONL (one record per line) or one record "
                                 "as a self-contained HTML page", allow_abbrev=False)
    export.add_argument("query", nargs="?", default="", help="keywords, as for search (none: every record)")
    export.add_argument("--jsonl", metavar="OUT", help="write the records as JSON lines: prompt, output, settings, "
                        "model, rating, tags")
    export.add_argument("--html", metavar="OUT", help="write one record (--id) as an HTML page with its trace viewer")
    export.add_argument("--id", type=int, help="the record for --html")
    export.add_argument("--files", metavar="DIR", help="copy the records' output files the domain trains from into "
                        "DIR/DOMAIN/ (for train DOMAIN --data DIR/DOMAIN or the Train tab)")
    _filters(export)
    export.set_defaults(limit=1_000_000)  # a dataset is the whole result, not its first page
    return parser


def _line(record) -> str:
    stars = STARS * record.rating if record.rating else "-"
    when = datetime.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M")
    text = " ".join((record.prompt + " → " + record.output if record.prompt else record.output).split())
    count = f" x{record.count}" if record.count > 1 else ""
    kind = "" if record.kind == "generation" else f" ({record.kind})"
    return f"{record.id}\t{record.domain}/{record.model}{kind}\t{stars}\t{when}{count}\t{text[:80]}"


def _search(store, args):
    return store.search(owners.LOCAL, getattr(args, "query", ""), like=args.like, domain=args.domain, model=args.model,
                        min_rating=args.min_rating, since=args.since, until=args.until, limit=args.limit,
                        kind=args.kind)


def run(args) -> int:
    store = open_store(args.db)
    owner = owners.LOCAL
    if args.action in ("list", "search"):
        hits = _search(store, args)
        for record in hits:
            print(_line(record))
        if not hits:
            print("no records", file=sys.stderr)
        return 0
    if args.action == "show":
        record = store.get(args.id, owner)
        shown = as_json(record)
        shown["model_stem"] = record.model_stem
        shown["share_token"] = record.share_token
        for kept in shown["files"]:
            kept["path"] = str(store.file_path(kept["sha256"]))
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    if args.action == "replay":
        record = store.get(args.id, owner)
        print(f"record {record.id}: {record.domain}/{record.model}, seed {record.seed}", file=sys.stderr)
        generation, reproduced, why = replay(args.id, owner, store)
        if generation is not None:
            from studio.domains import by_name
            from studio.library.records import content_hash

            print(f"output hash: {content_hash(by_name(record.domain), generation)}")
        print(f"stored hash: {record.content_hash}")
        print("reproduced: yes" if reproduced else f"reproduced: no ({why})")
        return 0 if reproduced else 1
    if args.action == "rate":
        store.rate(args.id, owner, args.stars or None)
    elif args.action == "tag":
        store.set_tags(args.id, owner, args.tags)
    elif args.action == "note":
        store.set_note(args.id, owner, args.note)
    elif args.action == "delete":
        store.delete(args.id, owner)
    elif args.action == "share":
        print(f"?run={store.share(args.id, owner)}")
    elif args.action == "unshare":
        store.unshare(args.id, owner)
    elif args.action == "export":
        if not args.jsonl and not args.html and not args.files:
            raise ValueError("Say where to write: --jsonl OUT, --files DIR or --html OUT.")
        if args.jsonl:
            hits = _search(store, args)
            count = export_jsonl(hits, args.jsonl)
            print(f"wrote {count} records to {args.jsonl}", file=sys.stderr)
        if args.files:
            for domain_name, paths in export_training_files(store, _search(store, args), args.files).items():
                print(f"wrote {len(paths)} {domain_name} files to {Path(args.files) / domain_name}", file=sys.stderr)
        if args.html:
            if args.id is None:
                raise ValueError("--html writes one record: give its --id.")
            from studio.library.html import export_html

            export_html(store, store.get(args.id, owner), args.html)
            print(f"wrote {args.html}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (NotFound, LibraryFull, ValueError, owners.OwnerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
