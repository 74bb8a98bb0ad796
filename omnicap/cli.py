"""How every entry point meets its user: `python -m <package> <verb>`, the console scripts, and one-line errors.

`python -m captioner caption ...` and the console script `captioner caption ...` (pyproject [project.scripts]) both go
through `dispatch`, which runs the verb's `module.main(argv)` inside `run_main`. Tests call `main(argv)` directly and
see the exceptions themselves.

One-line errors: a problem with what the user gave (a bad config key or type, a missing or unreadable model folder,
a hub id that is not cached while offline, an output folder that cannot be written, missing inputs) is printed as one
line `PROG: error: ...` naming the culprit, and the exit status is 2. Entry points check their inputs, model sources
and output folder with `check_*` before any model loads. Anything else is a bug and keeps its traceback. A user
error's traceback is shown on request: `--traceback` anywhere on the command line or `OMNICAP_TRACEBACK=1`.

Exit status of every entry point: 0 done; 1 finished but some items failed (listed on stderr); 2 bad input or
config (one line); 143 stopped by SIGTERM after saving what can be resumed (see omnicap.signals); 130 Ctrl-C.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "OMNICAP_TRACEBACK"
USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem with what the user gave; its message names the culprit and is printed as one line."""


SCRIPTS = {"captioner": "captioner", "recaption": "recaption", "t2i": "t2i", "eval": "omnicap-eval",
           "toyworld": "toyworld"}  # fmt: skip
"""package -> its console script (pyproject [project.scripts]); `eval` is a shell builtin, hence omnicap-eval"""


def prog_name(package: str) -> str:
    """`captioner` when run as the console script, else `python -m captioner`."""
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    script = SCRIPTS.get(package, package)
    return script if invoked == script else f"python -m {package}"


def dispatch(package: str, verbs: dict[str, tuple[str, str]], argv: list[str] | None = None) -> None:
    """verbs: {verb: (module, one-line help)}. Runs `module.main(rest_of_argv)` under `run_main`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog_name(package)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, verbs))
        print(f"usage: {prog} <verb> [--help] ...\n\nverbs:")
        for verb, (_, text) in verbs.items():
            print(f"  {verb:<{width}}  {text}")
        print(f"\nerrors are one line; add {TRACEBACK_FLAG} (or set {TRACEBACK_ENV}=1) for the traceback")
        raise SystemExit(0 if argv else 2)
    verb, rest = argv[0], argv[1:]
    if verb not in verbs:
        raise SystemExit(f"{prog}: unknown verb {verb!r}; valid verbs: {', '.join(verbs)}")
    module = importlib.import_module(verbs[verb][0])
    raise SystemExit(run_main(f"{prog} {verb}", module.main, rest))


def run_main(prog: str, main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> int:
    """Calls `main(argv)`; a user error becomes one line on stderr and exit status 2 (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_traceback = TRACEBACK_FLAG in argv or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != TRACEBACK_FLAG]
    try:
        result = main(argv)
    except KeyboardInterrupt:
        if wants_traceback:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted into user errors (one line) and bugs (re-raised)
        line = explain(e)
        if line is None or wants_traceback:
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        return USER_ERROR_EXIT
    return result if isinstance(result, int) else 0


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _flat(text: str) -> str:
    return re.sub(r":?\s*\n\s*", lambda m: ": " if m.group(0).startswith(":") else "; ", str(text).strip())


def explain(e: BaseException) -> str | None:
    """The one-line message for a user error, None for anything else (a bug keeps its traceback)."""
    names = {c.__name__ for c in type(e).__mro__}
    if isinstance(e, UserError) or names & {"ConfigError", "RecaptionError", "NonFiniteLoss", "UnsafeFile"}:
        return _flat(e)
    if "HFValidationError" in names:  # transformers/huggingface_hub: a string that is neither a folder nor a repo id
        found = re.search(r"'([^']+)'\.?\s*(Use|$)", str(e))
        culprit = f"{found.group(1)!r}" if found else "the model"
        return f"{culprit}: no such folder, and not a valid hub id (owner/name)"
    if names & {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError", "EntryNotFoundError"}:
        return _flat(str(e).splitlines()[0] if str(e) else type(e).__name__)
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or (
        isinstance(e, OSError) and re.search(r"couldn't connect to|not a valid model identifier|offline mode", str(e))
    ):
        found = re.search(r"(?:load|for|files for|identifier listed on)\s+'([^']+)'", str(e))
        culprit = f"{found.group(1)!r}" if found else "the model"
        why = "offline (HF_HUB_OFFLINE=1) and not in the local hub cache" if _offline() else "not found locally or on the hub"
        return f"{culprit}: no such local folder, and {why}; give a local folder or download it once online"
    if isinstance(e, (FileNotFoundError, PermissionError, NotADirectoryError)) and e.errno is None:
        return _flat(e)  # raised by our own code with a message that names the culprit
    if isinstance(e, OSError) and e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                                              errno.EISDIR, errno.ENOSPC):  # fmt: skip
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror or _flat(e)}{where}"
    return None


# ---------------------------------------------------------------- checks run before any model loads


def check_inputs(paths: Iterable[str | Path], setting: str) -> None:
    """Every path exists and is readable (files or folders)."""
    for path in paths:
        p = Path(path).expanduser()
        if not p.exists():
            raise UserError(f"{setting}: no such file or folder: {path}")
        if not os.access(p, os.R_OK):
            raise UserError(f"{setting}: not readable (permission denied): {path}")


def check_output_dir(folder: str | Path, setting: str) -> Path:
    """Creates `folder` (and parents) and proves it writable by writing a file in it; returns it."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"{setting}: cannot write to {folder} ({e.strerror or e})") from None
    return folder


def check_output_file(path: str | Path, setting: str) -> None:
    """The folder of an output file can be written (and an existing file appended to)."""
    path = Path(path).expanduser()
    check_output_dir(path.parent if str(path.parent) else Path("."), setting)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{setting}: cannot write to {path} (permission denied)")


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name or name.endswith("/")


def check_model(name: str, setting: str, special: Iterable[str] = ("tiny",), file_ok: bool = False) -> None:
    """A model source is a readable local folder, or a hub id that is valid (and cached, when offline).
    special: names that build a model without files (e.g. "tiny")."""
    if name in special:
        return
    p = Path(name).expanduser()
    if p.exists():
        if p.is_file() and not file_ok:
            raise UserError(f"{setting}={name!r}: a file, not a model folder")
        if not os.access(p, os.R_OK | (os.X_OK if p.is_dir() else 0)):
            raise UserError(f"{setting}={name!r}: not readable (permission denied)")
        return
    if _looks_like_path(name):
        raise UserError(f"{setting}={name!r}: no such folder")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise UserError(f"{setting}={name!r}: no such folder, and not a valid hub id (owner/name)") from None
    if _offline():
        from huggingface_hub import scan_cache_dir

        try:
            cached = {r.repo_id for r in scan_cache_dir().repos}
        except Exception:  # noqa: BLE001 - no cache folder at all
            cached = set()
        if name not in cached:
            raise UserError(f"{setting}={name!r}: no such local folder, and the hub is offline (HF_HUB_OFFLINE=1) "
                            "with no cached copy; give a local folder or download it once online")  # fmt: skip
