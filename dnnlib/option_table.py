"""A command's option table: every option declared once (name, type, default, one line of help, allowed values),
from which the command's absl flags, its defaults and its --help text are made.

Tables import no TensorFlow (a front end reports flag mistakes before TensorFlow loads), and absl only when flags
are defined. An allowed-values tuple is the library's own constant, imported from a TensorFlow-free module, never a
copy.
"""

from typing import NamedTuple

from dnnlib.easydict import EasyDict


class Option(NamedTuple):
    name: str
    type: type  # str, int, float, bool or list (a comma-separated flag)
    default: object
    help: str
    choices: tuple = ()  # the allowed values, when the option is one of a fixed set (an absl enum flag)
    flag: bool = True  # False: set from code (tests, benchmarks, the library), not a command-line flag
    key: str = None  # its name in the options object the library takes, when that differs from the flag's


def option_key(option):
    """The name of an option in the library's options object."""
    return option.key or option.name


def default_value(option):
    """An option's default as its flag holds it: a list option's default is a list."""
    if option.type is list and option.default is not None:
        return list(option.default)
    return option.default


def defaults(options, by_key=False):
    """Every option's default as an EasyDict, named by flag (or, by_key, by its name in the options object)."""
    return EasyDict({(option_key(o) if by_key else o.name): default_value(o) for o in options})


def pick(options, *names, help_prefix=""):
    """The rows of `options` named `names`, in that order: another command offering the same options takes the
    rows themselves (same name, type, default, allowed values), with help_prefix before each help line."""
    rows = {o.name: o for o in options}
    missing = [n for n in names if n not in rows]
    if missing:
        raise KeyError(f"no option {', '.join(missing)} in the table")
    return tuple(rows[n]._replace(help=help_prefix + rows[n].help) if help_prefix else rows[n] for n in names)


def define_flags(options, flag_values=None):
    """One absl flag per option with flag=True: same name, type, default, help and allowed values."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    define = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
              bool: flags.DEFINE_bool, list: flags.DEFINE_list}
    for o in options:
        if not o.flag:
            continue
        if o.choices:
            flags.DEFINE_enum(o.name, o.default, list(o.choices), o.help, flag_values=fv)
        else:
            define[o.type](o.name, default_value(o), o.help, flag_values=fv)
