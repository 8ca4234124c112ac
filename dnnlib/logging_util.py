"""Tee stdout/stderr into a run's log.txt so the console and the log say the same thing."""

import sys


class Logger:
    def __init__(self, file_name, file_mode="a"):
        self.file = open(file_name, file_mode)  # noqa: SIM115 - lives as long as the run
        self.stdout, self.stderr = sys.stdout, sys.stderr
        sys.stdout = self
        sys.stderr = self

    def write(self, text):
        if not text:
            return
        self.file.write(text)
        self.stdout.write(text)
        self.flush()

    def flush(self):
        self.file.flush()
        self.stdout.flush()

    def close(self):
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
