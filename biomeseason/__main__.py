"""Command line: ``python -m biomeseason <command> --help``.

Each command lives in the module that does the job; the module offers
``get_args_parser(add_help)`` and ``main(args)``, as the torchvision reference
scripts do. Modules are imported only when their command runs, so
``colors`` does not pay for importing torch.

Errors a user can fix (a bad setting, a missing path, an output that would
overwrite something) are one sentence and exit code 2, never a traceback;
a full disk or quota, a file-size limit or a read-only file system while
writing is one sentence naming the output and exit code 1;
Ctrl-C or ``kill`` ends with exit code 130 after the command has cleaned up.
"""
import argparse
import importlib
import sys
from pathlib import Path

COMMANDS = {
    "synth": ("biomeseason.synthetic.generate", "write synthetic Earth scenes with labelled file names"),
    "earth": ("biomeseason.earth.tiles", "cut and label every land tile of the Blue Marble maps (the whole Earth)"),
    "ship": ("biomeseason.training.ship", "score a trained Earth model on held-out places and write models/earth.pt"),
    "preprocess": ("biomeseason.prepare.preprocess", "clean data/raw into data/processed (same as dataset_preproc.py)"),
    "train": ("biomeseason.training.loop", "train the two-head ResNet on data/processed"),
    "predict": ("biomeseason.predict.cli", "predict biome, month and season of images into a CSV"),
    "colors": ("biomeseason.colors.palette", "dominant colours of images, named, into a CSV or JSON"),
    "demo": ("biomeseason.demo", "the whole chain on synthetic data, executing the notebooks"),
    "clean": ("biomeseason.io.files", "delete output folders written by biomeseason (and nothing else)"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m biomeseason <command> [options]\n\ncommands:\n" + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"python -m biomeseason {name}",
                                     description=COMMANDS[name][1],
                                     parents=[module.get_args_parser(add_help=False)])
    args = parser.parse_args(rest)
    from .io.files import UsageError, out_of_space, terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            return module.main(args) or 0
    except (UsageError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"error: {_sentence(e)}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:   # RuntimeError: torch.save wraps the OSError
        full = out_of_space(e)
        if full is None:
            raise
        print(f"error: {_no_room(full, getattr(args, 'out', None))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; finished outputs are kept and nothing half-written was left",
              file=sys.stderr)
        return 130


def _no_room(error: OSError, out) -> str:
    """The out-of-room sentence, naming the file if it is inside --out, else --out itself (the
    file may be in a temporary build folder beside it that the user never sees)."""
    from .io.files import OutOfSpaceError

    where = error.filename
    if out is not None and (where is None or Path(out).resolve() not in Path(where).resolve().parents):
        where = out
    return str(OutOfSpaceError(error.errno, error.strerror, str(where)))


def _sentence(error: BaseException) -> str:
    """The first line of an error, with the file name for OS errors that carry one."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
