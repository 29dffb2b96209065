from flashdoctor.cli import main

if __name__ == "__main__":
    main(as_module=True)  # `python -m flashdoctor`: that Python is the one to check (probe.default_python)
