"""`python -m loadgen ...` is `supernode bench ...`."""

from loadgen.cli import main

raise SystemExit(main())
