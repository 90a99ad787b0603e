"""``python -m kenomill``: the same command line as the ``kenomill`` console script."""

from kenomill.cli import main

if __name__ == "__main__":
    main(prog_name="kenomill")
