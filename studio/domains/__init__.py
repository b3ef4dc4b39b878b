"""The domains of the studio. ALL is the only list of them: the app makes one tab per entry, the
CLI one subcommand per entry, the tests and benches iterate it. Each is a package keeping the
contract in studio.domains.base; adding a domain = one new package + one entry here."""

from studio.domains import handwriting, music, speech, text

ALL = (text, music, handwriting, speech)
