"""The store's attribute set from the command line, until the app has a page for it.

    python -m store attributes [--db URL]                  # the attributes annotators added
    python -m store add-attribute NAME [--by WHO] [--db URL]

A Label Studio label that is not an attribute of the model or of this set is refused on import;
adding it here lets the next import take it.
"""
from __future__ import annotations

import argparse
import sys

from store import open_store
from store.errors import CorrectionError, StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="store URL (default: DRAM_DB_URL or ./dram-store.sqlite)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("attributes", help="list the attributes annotators added")
    add = commands.add_parser("add-attribute", help="let corrections and imports use a new attribute")
    add.add_argument("name")
    add.add_argument("--by", help="who asked for it (kept with the attribute)")
    args = parser.parse_args(argv)
    try:
        with open_store(args.db) as store:
            if args.command == "attributes":
                print("\n".join(store.attributes()) or "(none added; the model's own attributes always count)")
            elif store.add_attribute(args.name, added_by=args.by):
                print(f"Added {args.name!r}; import from Label Studio again to bring in its labels.")
            else:
                print(f"{args.name!r} was already in the store's attribute set.")
    except (CorrectionError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
