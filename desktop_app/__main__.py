"""``noisenil-gui``: placeholder entry point until the desktop app issue is done."""

import sys


def main(argv=None) -> int:
    print("noisenil-gui: the desktop app is not built yet; use the `noisenil` command line.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
