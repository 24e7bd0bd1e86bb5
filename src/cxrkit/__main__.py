"""`python -m cxrkit ...`: the same command line as the `cxr` script."""

from cxrkit.cli.app import main

if __name__ == "__main__":
    main()
