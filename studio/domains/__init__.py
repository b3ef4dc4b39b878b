"""The domains of the studio. ALL is the only list of them: the app makes one tab per entry, the
CLI one subcommand per entry, the tests and benches iterate it. Each is a package keeping the
contract in studio.domains.base; adding a domain = one new package + one entry here."""

from studio.domains import handwriting, music, speech, text, timeseries
from studio.domains.base import OPTIONAL

ALL = (text, music, handwriting, speech, timeseries)


def member(domain, name: str):
    """An optional member of the contract (studio.domains.base.OPTIONAL): the domain's own, else the default."""
    return getattr(domain, name, OPTIONAL[name])


def by_name(name: str):
    """The domain whose NAME this is (ValueError naming the known ones otherwise)."""
    for domain in ALL:
        if domain.NAME == name:
            return domain
    raise ValueError(f"Unknown domain {name!r}; one of {', '.join(d.NAME for d in ALL)}.")
