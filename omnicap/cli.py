"""`python -m <package> <verb> ...`: each package maps verbs to modules that define `main(argv=None)`."""

from __future__ import annotations

import importlib
import sys


def dispatch(package: str, verbs: dict[str, tuple[str, str]], argv: list[str] | None = None) -> None:
    """verbs: {verb: (module, one-line help)}. Runs `module.main(rest_of_argv)`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, verbs))
        print(f"usage: python -m {package} <verb> [--help] ...\n\nverbs:")
        for verb, (_, text) in verbs.items():
            print(f"  {verb:<{width}}  {text}")
        raise SystemExit(0 if argv else 2)
    verb, rest = argv[0], argv[1:]
    if verb not in verbs:
        raise SystemExit(f"python -m {package}: unknown verb {verb!r}; valid verbs: {', '.join(verbs)}")
    module = importlib.import_module(verbs[verb][0])
    result = module.main(rest)
    raise SystemExit(result if isinstance(result, int) else 0)
