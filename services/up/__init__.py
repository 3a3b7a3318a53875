"""`supernode up`: a whole deployment on this machine, under a chosen runtime, until Ctrl-C.

`cli` parses the flags and runs it; `controller` scales the pools and applies runtime faults;
`control` serves the control API that `supernode scale`, `autoscale` and `fault` call.
"""
