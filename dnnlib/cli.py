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


# Exit status of a command given bad input (a flag, a value, a file): what the README promises.
INPUT_ERROR_EXIT = 2


def _canonical_flag(name, names, aliases):
    """The defined flag `name` stands for ('num-steps' -> 'num_steps', an alias, 'no-x' -> 'nox'), or None."""
    candidates = (name, name.replace("-", "_"))
    for c in candidates:
        if c in names:
            return c
        if c in aliases:
            return aliases[c]
    for c in candidates:  # absl's negated booleans: --nofoo, also spelled --no-foo / --no_foo
        if c.startswith("no"):
            base = c[2:].lstrip("_")
            base = base if base in names else aliases.get(base)
            if base in names:
                return "no" + base
    return None


def apply_aliases(argv, names, aliases=None):
    """argv with the spellings StyleGAN2-ADA users type made canonical, before absl parses it.

    names: the defined flag names; aliases: other name -> defined name (e.g. {"cfg": "config"}). Hyphens become
    underscores (--num-steps -> --num_steps), -h becomes --help; words after a bare `--` are left alone.
    """
    aliases = aliases or {}
    out = list(argv[:1])
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg == "-h" and "h" not in names:
            out.append("--help")
            continue
        if not arg.startswith("-") or len(arg) < 2:
            out.append(arg)
            continue
        dashes = "--" if arg.startswith("--") else "-"
        name, eq, value = arg[len(dashes):].partition("=")
        new = None if name in names else _canonical_flag(name, names, aliases)
        out.append(arg if new is None else f"{dashes}{new}{eq}{value}")
    return out


def main(main_fn, aliases=None, flag_values=None):
    """Run an absl front end the way its users expect; replaces `app.run(run_main(main_fn))`.

    - argv goes through apply_aliases (hyphenated names, `aliases`) before parsing;
    - --help / -h / --helpshort / --helpfull print the usage and exit 0;
    - a flag absl refuses (unknown name, bad enum value, bad number) prints one line `error: ...` and exits 2,
      like every other input error (run_main);
    - the first `import tensorflow` is quiet (dnnlib.tf_quiet): TensorFlow is still loaded only when needed.
    """
    from absl import app, flags

    from dnnlib import tf_quiet

    fv = flags.FLAGS if flag_values is None else flag_values
    tf_quiet.install()

    def parse(argv):
        app.define_help_flags()  # so the help flags are known names for the aliases
        argv = apply_aliases(argv, set(fv), aliases)
        try:
            return fv(argv)
        except flags.Error as e:
            message = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
            print(f"error: {message} (see --help)", file=sys.stderr)
            sys.exit(INPUT_ERROR_EXIT)
        except SystemExit as e:
            # absl's help flags print the usage and exit 1 during parsing; asking for help is not an error.
            sys.exit(0 if e.code == 1 else e.code)

    app.run(run_main(main_fn), flags_parser=parse)


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


def check_network_flag(path, kind, flag="network"):
    """A dataset folder given as the network is refused with a hint (other mistakes are the loader's to report).

    kind: what the folder holds (volumes.folder_kind.folder_kind(path)); the caller judges it, so that this module
    stays free of any knowledge of datasets.
    """
    if path and kind == "dataset":
        raise UserError(f"--{flag}={path}: this is a dataset, not a trained network; did you mean --data? "
                        f"(--{flag} takes a run directory, a checkpoint prefix or a generator SavedModel)")


def check_data_flag(path, kind, flag="data"):
    """A folder of raw scans or a training run given as the dataset is refused with a hint naming what to do.

    kind: as for check_network_flag.
    """
    if not path:
        return
    if kind == "scans":
        raise UserError(f"--{flag}={path}: holds scans, not a dataset: create one with dataset_tool.py create "
                        f"--input={path} --output=datasets/<name>")
    if kind == "network":
        raise UserError(f"--{flag}={path}: this is a training run or network, not a dataset; did you mean --network?")


def check_output_flag(flag, output, overwrite=False, inputs=()):
    """The front ends' output check (dnnlib.fileutil.check_output_dir) as a UserError naming the flag."""
    from dnnlib.fileutil import check_output_dir

    try:
        return check_output_dir(output, [p for p in inputs if p], overwrite)
    except (ValueError, OSError) as e:
        hint = "; pass --overwrite to replace it" if isinstance(e, FileExistsError) and not overwrite else ""
        raise UserError(f"--{flag}={output}: {e}{hint}") from None
