"""The processes: thin I/O shells around the supernode core library."""
