"""The command line: parses arguments, calls the library, renders results and maps typed errors to exit codes.

Nothing below imports it."""
