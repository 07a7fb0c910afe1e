"""bench/fsfloor.py DIR N: the file-system work of `meshca init` of N
clusters without meshca: make DIR and N cluster directories, write five
temporary files of 2 KiB in each (O_CREAT|O_EXCL, as meshca's temporary
files), flush the file system (syncfs), rename each file over its name,
flush again. What is left of `init`'s time beyond this is meshca's."""

import os
import sys

NAMES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem", "cacerts.yaml")


def main() -> int:
    root, n = sys.argv[1], int(sys.argv[2])
    os.mkdir(root)
    data = b"x" * 2048
    dirs = []
    for i in range(n):
        d = os.path.join(root, f"c{i + 1}")
        os.mkdir(d)
        dirs.append(d)
        for name in NAMES:
            fd = os.open(os.path.join(d, f".meshca-{name}.tmp"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)
    fd = os.open(root, os.O_RDONLY)
    os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
    for d in dirs:
        for name in NAMES:
            os.rename(os.path.join(d, f".meshca-{name}.tmp"), os.path.join(d, name))
    os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
