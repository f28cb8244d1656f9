"""What the integration scripts here report and check with: a skip (exit
77, counted as skipped, never as passed) and a failed check."""

import sys


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(77)


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)
