"""`python -m hookstream.cli`, as the `hookstream` script."""

from hookstream.cli import main

if __name__ == "__main__":
    main()
