"""What every other part stands on: typed errors and exit codes, units, atomic files, terminal/JSON output.

Imports nothing else of modelctl."""
