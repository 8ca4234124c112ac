"""Shared glue for absl front ends: input errors become one clear line and exit code 2; bugs keep their traceback."""

import contextlib
import math
import signal
import sys

from dnnlib.errors import InputError, UserError

# The one exit-code rule. These are input errors: a flag (UserError), a file's content or a value found by library
# code (InputError), a path or the file system, a full disk included (OSError). Any other exception is a bug: its
# traceback is printed and the exit status is 1 (a plain ValueError or TypeError included).
INPUT_ERRORS = (UserError, InputError, OSError)
# TensorFlow's own errors that report input or the machine, not a bug: a corrupt record (DataLoss), a full disk or
# memory (ResourceExhausted), a missing or unreadable file (NotFound, PermissionDenied). Matched by name, so this
# module does not import TensorFlow.
TF_INPUT_ERRORS = ("DataLossError", "ResourceExhaustedError", "NotFoundError", "PermissionDeniedError")


def is_input_error(e):
    """True when exception e is the user's input or the machine (exit 2), False when it is a bug (exit 1)."""
    if isinstance(e, INPUT_ERRORS):
        return True
    return type(e).__module__.startswith("tensorflow") and type(e).__name__ in TF_INPUT_ERRORS


def error_line(e):
    """The one line printed for an input error: TensorFlow's messages are cut to their first line."""
    text = getattr(e, "message", None) if type(e).__module__.startswith("tensorflow") else None
    text = str(text if text is not None else e).strip()
    return text.splitlines()[0] if text else type(e).__name__


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
    """Wrap an absl main so input errors (is_input_error) print 'error: ...' and exit 2; bugs exit 1 with a traceback.

    SIGTERM unwinds as SigtermInterrupt (see sigterm_as_keyboard_interrupt), so temporary outputs are removed, then
    prints 'error: stopped by SIGTERM' and exits 143. Code that handles SIGTERM itself (training's checkpoint-then-stop)
    installs its own handler inside.
    """

    def wrapped(argv):
        try:
            with sigterm_as_keyboard_interrupt():
                return main_fn(argv)
        except Exception as e:
            if not is_input_error(e):
                raise  # a bug: the traceback is printed and the exit status is 1
            print(f"error: {error_line(e)}", file=sys.stderr)
            sys.exit(INPUT_ERROR_EXIT)
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


# Bounds of parse_int_ranges: numpy's seeds are 0 .. 2**32 - 1, and a list longer than this is a typo (each entry
# is a volume to write), refused before the list is built.
SEED_MAX = 2**32 - 1
MAX_RANGE_ITEMS = 100_000


def parse_int_ranges(text, flag_name="--seeds", max_items=MAX_RANGE_ITEMS, max_value=SEED_MAX):
    """Parse '0-3,7,10-11' into [0,1,2,3,7,10,11]: integers in [0, max_value], at most max_items in all (checked
    before the list is built, so a typo such as 0-99999999999 allocates nothing)."""
    spans = []
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
                spans.append((a, b))
            else:
                spans.append((int(part), int(part)))
    except ValueError:
        raise UserError(f"{flag_name}={text!r}: expected comma-separated integers or ranges like 0-9,20") from None
    if not spans:
        raise UserError(f"{flag_name} is empty")
    bad = [v for span in spans for v in span if not 0 <= v <= max_value]
    if bad:
        raise UserError(f"{flag_name}={text!r}: {bad[0]} is outside 0..{max_value}")
    count = sum(b - a + 1 for a, b in spans)
    if count > max_items:
        raise UserError(f"{flag_name}={text!r}: {count} values; at most {max_items} are accepted")
    return [v for a, b in spans for v in range(a, b + 1)]


def check_finite(flag, value, allow_none=True):
    """Refuse a float flag that is NaN or infinite (absl accepts 'nan' and 'inf' for float flags)."""
    if value is None and allow_none:
        return value
    if value is None or not math.isfinite(float(value)):
        raise UserError(f"--{flag}={value}: must be a finite number")
    return value


def parse_label(values, flag="label"):
    """A list flag of label values (absl's DEFINE_list: strings) as finite floats; None when not given."""
    if values is None:
        return None
    try:
        label = [float(v) for v in values]
    except ValueError:
        raise UserError(f"--{flag}={','.join(values)}: expected comma-separated numbers") from None
    if not all(math.isfinite(v) for v in label):
        raise UserError(f"--{flag}={','.join(values)}: every value must be a finite number")
    return label


def check_float_flags(flag_values, names=None):
    """check_finite for every float flag of flag_values (or the listed names) that was given a value."""
    for name in names if names is not None else list(flag_values):
        fl = flag_values[name]
        if isinstance(fl.value, float) and fl.flag_type() == "float":
            check_finite(name, fl.value)


# The largest batch a front end accepts: more volumes than this at once is a typo, refused before any allocation.
MAX_BATCH = 4096


def check_batch(flag, value, maximum=MAX_BATCH):
    if not 1 <= value <= maximum:
        raise UserError(f"--{flag}={value}: must be between 1 and {maximum}")
    return value


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


def check_io(inputs, outputs, overwrite=False):
    """A command's one input/output table, checked before any work (dnnlib.fileutil.check_output per output).

    inputs: {flag: path or list of paths}, every file or folder the command reads (None/empty entries ignored).
    outputs: {flag: (path, kind)} with kind "folder", "file" or "parent" (see check_output); every output is
    checked against every input and against every other output. Returns {flag: absolute output path}.
    Refusals are UserErrors naming the output's flag.
    """
    from dnnlib.fileutil import check_output

    paths = []
    for value in inputs.values():
        paths.extend(p for p in ([value] if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__")
                                 else (value or [])) if p)
    checked = {}
    for flag, (path, kind) in outputs.items():
        if not path:
            continue
        others = [p for f, (p, _) in outputs.items() if f != flag and p]
        try:
            check_output(path, paths, overwrite, kind)
            check_output(path, others, True, "parent")  # two outputs of one command never overlap
        except (ValueError, OSError) as e:
            hint = "; pass --overwrite to replace it" if isinstance(e, FileExistsError) and not overwrite else ""
            raise UserError(f"--{flag}={path}: {e}{hint}") from None
        checked[flag] = path
    return checked
