"""Building the sandbox image: online (`docker build` of sandbox/Dockerfile) or offline (debootstrap + import).

Offline: `debootstrap --variant=minbase --include=python3,python3-numpy bookworm DIR MIRROR` with the
mirror this machine's apt already uses, apt caches dropped, then the tree is imported as an image. Needs
root, debootstrap and a reachable Debian mirror; no container registry.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from sdpo_ttt.errors import SandboxUnavailable

DEBIAN_FALLBACK = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-numpy"  # NOT python3-minimal: it lacks json; numpy because real solutions use it

# Kept identical to sandbox/Dockerfile (a test checks): the package must build the image without the repo.
DOCKERFILE = """\
# The sdpo-ttt sandbox image (online build). Offline equivalent: `sdpo-ttt sandbox build --offline`.
# Hardening (no network, read-only root, caps dropped, ...) is applied when containers are created.
FROM python:3.12-slim
RUN pip install --no-cache-dir numpy
USER 65534:65534
WORKDIR /tmp
CMD ["python3"]
"""


def apt_mirror(source_globs: tuple[str, ...] = ("/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list",
                                                "/etc/apt/sources.list.d/*.list")) -> str:
    """The first Debian (non-security) mirror URI configured for apt on this machine, else deb.debian.org."""
    uris: list[str] = []
    for pattern in source_globs:
        for path in sorted(glob.glob(pattern)):
            try:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if path.endswith(".sources"):
                uris += [u for m in re.finditer(r"(?im)^URIs:\s*(.+)$", text) for u in m.group(1).split()]
            else:
                for line in text.splitlines():
                    parts = re.sub(r"\[[^\]]*\]", " ", line).split()
                    if len(parts) >= 3 and parts[0] == "deb":
                        uris.append(parts[1])
    for u in uris:
        if "security" not in u and u.startswith(("http://", "https://", "file:")):
            return u.rstrip("/")
    return DEBIAN_FALLBACK


def debootstrap_command(root: str, mirror: str, suite: str = "bookworm") -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", suite, root, mirror]


def build_offline(tag: str, *, mirror: str | None = None, suite: str = "bookworm",
                  log: Callable[[str], None] = print) -> str:
    """debootstrap a minimal Debian with python3 + numpy and import it as `tag`. Returns the image id."""
    if os.geteuid() != 0:
        raise SandboxUnavailable("the offline image build needs root (debootstrap)", "run it as root, e.g. with sudo")
    if shutil.which("debootstrap") is None:
        raise SandboxUnavailable("debootstrap is not installed", "apt-get install -y debootstrap")
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:  # noqa: BLE001
        raise SandboxUnavailable(f"no Docker daemon answers ({type(e).__name__})",
                                 "start it: dockerd --bridge=none --iptables=false &") from None
    mirror = mirror or apt_mirror()
    with tempfile.TemporaryDirectory(prefix="sdpo-ttt-rootfs-") as tmp:
        root = os.path.join(tmp, "rootfs")
        cmd = debootstrap_command(root, mirror, suite)
        log("$ " + " ".join(cmd))
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SandboxUnavailable(f"debootstrap failed (exit {r.returncode}): {r.stdout[-800:]}",
                                     f"check that the mirror {mirror} is reachable, or pass --mirror URL")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in glob.glob(os.path.join(root, junk, "*")):
                if os.path.isfile(p):
                    os.unlink(p)
        tar = os.path.join(tmp, "rootfs.tar")
        log(f"packing {root} and importing it as {tag}")
        subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", tar, "."], check=True)
        repo, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
        out = client.api.import_image_from_file(tar, repository=repo, tag=version, changes=['CMD ["python3"]'])
    image = client.images.get(tag)
    log(f"built {tag} ({image.short_id}): {str(out).strip()[-200:]}")
    return image.id


def build_online(tag: str, *, log: Callable[[str], None] = print) -> str:
    """`docker build` of the Dockerfile above (needs a reachable registry for python:3.12-slim)."""
    import io

    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:  # noqa: BLE001
        raise SandboxUnavailable(f"no Docker daemon answers ({type(e).__name__})",
                                 "start Docker, or build offline with `sdpo-ttt sandbox build --offline`") from None
    try:
        image, logs = client.images.build(fileobj=io.BytesIO(DOCKERFILE.encode()), tag=tag, rm=True)
    except Exception as e:  # noqa: BLE001 - build errors, unreachable registry
        raise SandboxUnavailable(f"docker build failed: {e}",
                                 "no registry reachable? use `sdpo-ttt sandbox build --offline`") from None
    for chunk in logs:
        if isinstance(chunk, dict) and chunk.get("stream"):
            log(chunk["stream"].rstrip())
    return image.id
