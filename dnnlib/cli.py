"""Shared glue for absl front ends: input errors become one clear line and exit code 2."""

import sys

from dnnlib.errors import UserError

# Library code reports bad input (a file's content, a value) with these plain exceptions; the front end that
# called it reports them like its own flag errors.
INPUT_ERRORS = (UserError, ValueError, OSError)


def run_main(main_fn):
    """Wrap an absl main so UserError, and ValueError/OSError from the library, print 'error: ...' and exit 2."""

    def wrapped(argv):
        try:
            return main_fn(argv)
        except INPUT_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped


def parse_int_ranges(text, flag_name="--seeds"):
    """Parse '0-3,7,10-11' into [0,1,2,3,7,10,11]."""
    out = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, None)
                a, b = int(a), int(b)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise UserError(f"{flag_name}={text!r}: expected comma-separated integers or ranges like 0-9,20") from None
    if not out:
        raise UserError(f"{flag_name} is empty")
    return out
