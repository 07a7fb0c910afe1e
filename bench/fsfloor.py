"""bench/fsfloor.py DIR N: the file-system work of `meshca init` of N
clusters without meshca: make DIR, then for each cluster a temporary
directory holding five files of 2 KiB (O_CREAT|O_EXCL, as meshca writes
them), flush the file system (syncfs), rename each temporary directory to
its cluster's name, flush again. What is left of `init`'s time beyond this
is meshca's."""

import os
import sys

NAMES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem", "cacerts.yaml")


def main() -> int:
    root, n = sys.argv[1], int(sys.argv[2])
    os.mkdir(root)
    data = b"x" * 2048
    staged = []
    for i in range(n):
        tmp = os.path.join(root, f".meshca-c{i + 1}.tmp")
        os.mkdir(tmp)
        staged.append((tmp, os.path.join(root, f"c{i + 1}")))
        for name in NAMES:
            fd = os.open(os.path.join(tmp, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)
    fd = os.open(root, os.O_RDONLY)
    os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
    for tmp, final in staged:
        os.rename(tmp, final)
    os.syncfs(fd) if hasattr(os, "syncfs") else os.sync()
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
