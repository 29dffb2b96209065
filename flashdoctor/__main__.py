import sys

from flashdoctor.errors import missing_dependency

try:
    from flashdoctor.cli import main
except ModuleNotFoundError as exc:  # click itself, imported before main() can report anything
    missing = missing_dependency(exc)
    if missing is None:
        raise
    print(missing.text(), file=sys.stderr)
    sys.exit(missing.return_code)

if __name__ == "__main__":
    main(as_module=True)  # `python -m flashdoctor`: that Python is the one to check (probe.default_python)
