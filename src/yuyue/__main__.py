"""`python -m yuyue` runs the command line."""

from yuyue.cli import main

main()
