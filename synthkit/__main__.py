"""`python -m synthkit ...`: the same command line as `synthkit ...`."""

from synthkit.cli import main

if __name__ == "__main__":
    main()
