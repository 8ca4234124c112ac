"""Shared glue for absl front ends: input errors become one clear line and exit code 2."""

import contextlib
import signal
import sys

from dnnlib.errors import UserError

# Library code reports bad input (a file's content, a value) with these plain exceptions; the front end that
# called it reports them like its own flag errors.
INPUT_ERRORS = (UserError, ValueError, OSError)


# Exit status of a tool stopped by SIGTERM: what a shell reports for a process that SIGTERM killed.
SIGTERM_EXIT = 128 + signal.SIGTERM


class SigtermInterrupt(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives inside sigterm_as_keyboard_interrupt().

    A KeyboardInterrupt, so it unwinds like Ctrl-C: `except Exception` does not swallow it, and every context
    manager on the way out (atomic_output_dir removing its temporary folder, a worker pool terminating) runs.
    """


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt():
    """Turn SIGTERM (a cluster scheduler's time limit, `kill`) into SigtermInterrupt for the duration.

    Without it SIGTERM ends the process on the spot: temporary outputs stay behind and orphaned workers fail
    on broken pipes. Further SIGTERMs are ignored once the first has been raised, so cleanup is not cut short.
    Only the main thread can install handlers; elsewhere this is a no-op.
    """

    def handler(signum, frame):
        # A handler that does nothing, not SIG_IGN: an ignored SIGTERM would be inherited by worker processes
        # started during the cleanup, and stopping them (Pool.terminate sends SIGTERM) would then wait forever.
        signal.signal(signal.SIGTERM, lambda *_: None)
        raise SigtermInterrupt("stopped by SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(main_fn):
    """Wrap an absl main so UserError, and ValueError/OSError from the library, print 'error: ...' and exit 2.

    SIGTERM unwinds as SigtermInterrupt (see sigterm_as_keyboard_interrupt), so temporary outputs are removed, then
    prints 'error: stopped by SIGTERM' and exits 143. Code that handles SIGTERM itself (training's checkpoint-then-stop)
    installs its own handler inside.
    """

    def wrapped(argv):
        try:
            with sigterm_as_keyboard_interrupt():
                return main_fn(argv)
        except INPUT_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except SigtermInterrupt:
            print("error: stopped by SIGTERM", file=sys.stderr)
            sys.exit(SIGTERM_EXIT)

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


def check_output_flag(flag, output, overwrite=False, inputs=()):
    """The front ends' output check (dnnlib.fileutil.check_output_dir) as a UserError naming the flag."""
    from dnnlib.fileutil import check_output_dir

    try:
        return check_output_dir(output, [p for p in inputs if p], overwrite)
    except (ValueError, OSError) as e:
        hint = "; pass --overwrite to replace it" if isinstance(e, FileExistsError) and not overwrite else ""
        raise UserError(f"--{flag}={output}: {e}{hint}") from None
