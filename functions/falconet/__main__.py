"""`python -m falconet`: the command-line interface."""

from falconet.cli import main

raise SystemExit(main())
