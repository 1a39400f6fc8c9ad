"""The commands: the command line (cli), Ctrl-C handling (interrupt), ``vidstyle live`` (live)
and ``live --serve`` (serve). The top layer: nothing below imports it."""
