"""Print the `podman build` arguments that hand this host's pip configuration to an image build.

A build behind a proxy or with local package folders reaches packages only the way its host does. This
reads the host's effective pip configuration (files and PIP_* variables, as `pip config list` merges them),
writes the settings that decide where packages come from into one pip.conf in OUTDIR, and prints, one per
line, the read-only volumes for that file and every local folder or file it names, and the build argument
that points pip at it. Nothing of it is copied into the image: the volumes exist only while RUN steps run.

    python3 host_pip.py OUTDIR
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# Where packages come from and how they are trusted; everything else is the build's own business.
KEYS = ("index-url", "extra-index-url", "find-links", "cert", "constraint", "trusted-host", "default-timeout")
MOUNT = "/run/nr4dl-host"  # inside the build
CERT = f"{MOUNT}/ca.crt"  # the CA bundle apart from the image's own /etc/ssl/certs


def host_config() -> dict[str, str]:
    """The host's settings for KEYS; PIP_* variables (":env:") win over files, as in pip itself."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, str] = {}
    for line in sorted(listed.splitlines(), key=lambda line: line.startswith(":env:")):
        match = re.fullmatch(r"(?P<section>[^.]*|:env:)\.(?P<key>[\w-]+)='(?P<value>.*)'", line)
        if match and match["key"] in KEYS and match["section"] in ("global", "install", "download", ":env:"):
            found[match["key"]] = match["value"]
    return found


def main(outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    config = host_config()
    volumes: dict[str, str] = {str(out): f"{MOUNT}/pip"}
    if cert := config.get("cert"):
        volumes[cert] = CERT
        config["cert"] = CERT
    for key in ("index-url", "extra-index-url", "find-links", "constraint"):
        for token in config.get(key, "").split():
            local = token.removeprefix("file://").rstrip("/")
            if key.endswith("index-url") and local.endswith("/simple"):
                local = local.removesuffix("/simple")  # a local index links to its files beside simple/
            if local.startswith("/") and Path(local).exists():
                volumes.setdefault(local, local)
    (out / "pip.conf").write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in config.items()))
    for source, target in volumes.items():
        print(f"--volume={source}:{target}:ro")
    print(f"--build-arg=PIP_CONFIG_FILE={MOUNT}/pip/pip.conf")


if __name__ == "__main__":
    main(sys.argv[1])
