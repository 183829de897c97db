"""``python -m aligneai``: the same command line as the ``aligneai`` script."""

from aligneai.cli import console_main

console_main()
