import multiprocessing
import sys

from plugin_host.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # `noisenil render --jobs N` starts worker processes
    sys.exit(main())
