"""ConfigMap volumes of a simulated pod, laid out on disk the way the kubelet would mount them.

A process that stands in for a pod's container runs on this machine, not in the pod's filesystem,
so each pod gets a root directory of its own: a file the container would see at
``/etc/thrifty/router/router.json`` lives at ``<root>/etc/thrifty/router/router.json``, and
paths the container is given are rewritten to point there (:func:`rehome`).

    mounts = config_map_mounts(pod["spec"], container)
    files = mounted_files(mounts, {"assistant-router": config_map})   # in-pod path -> bytes
    write_files(root, files, mounts)
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


class PodSpecError(ValueError):
    """The pod asks for something the testbed cannot give it; the message names the field."""


class MissingConfigMapError(LookupError):
    """A ConfigMap (or a key of one) that a non-optional volume needs does not exist (yet): the
    kubelet would hold the pod in ContainerCreating until it does."""


@dataclass(frozen=True)
class ConfigMapMount:
    """One configMap volume mounted into the container."""

    volume: str
    """The volume's name in spec.volumes."""
    config_map: str
    """The ConfigMap's name, in the pod's namespace."""
    mount_path: PurePosixPath
    """Where the container sees the volume (an absolute directory)."""
    items: tuple[tuple[str, str], ...] | None = None
    """(key, relative path) pairs when the volume projects chosen keys; None projects every key
    under its own name."""
    optional: bool = False
    """An optional volume mounts empty when its ConfigMap is missing, instead of blocking the pod."""


def config_map_mounts(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> list[ConfigMapMount]:
    """The container's configMap volume mounts; volumes of other kinds are left alone."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or ()}
    mounts = []
    for index, mount in enumerate(container.get("volumeMounts") or ()):
        where = f"spec.containers[{container.get('name')}].volumeMounts[{index}]"
        volume = volumes.get(mount["name"])
        if volume is None:
            raise PodSpecError(f"{where}.name: no volume {mount['name']!r} in spec.volumes")
        source = volume.get("configMap")
        if source is None:
            continue
        if mount.get("subPath") or mount.get("subPathExpr"):
            raise PodSpecError(
                f"{where}.subPath: the testbed mounts whole configMap volumes only; mount the volume "
                "at a directory and point the container at the file inside it"
            )
        mount_path = PurePosixPath(mount["mountPath"])
        if not mount_path.is_absolute():
            raise PodSpecError(f"{where}.mountPath: {mount_path} must be an absolute path")
        items = source.get("items")
        mounts.append(
            ConfigMapMount(
                volume=volume["name"],
                config_map=source["name"],
                mount_path=mount_path,
                items=tuple((item["key"], item["path"]) for item in items) if items else None,
                optional=bool(source.get("optional", False)),
            )
        )
    return mounts


def config_map_entries(config_map: Mapping[str, Any]) -> dict[str, bytes]:
    """Every key of a ConfigMap with its content: `data` as UTF-8, `binaryData` decoded."""
    entries = {key: value.encode() for key, value in (config_map.get("data") or {}).items()}
    for key, value in (config_map.get("binaryData") or {}).items():
        entries[key] = base64.b64decode(value)
    return entries


def mounted_files(
    mounts: Iterable[ConfigMapMount], config_maps: Mapping[str, Mapping[str, Any] | None]
) -> dict[PurePosixPath, bytes]:
    """In-pod path -> content of every file the mounts show. ``config_maps`` maps each mounted
    ConfigMap's name to the object, or to None when it does not exist.

    Raises :class:`MissingConfigMapError` for a missing ConfigMap, or a missing projected key, of a
    volume that is not optional.
    """
    files: dict[PurePosixPath, bytes] = {}
    for mount in mounts:
        config_map = config_maps.get(mount.config_map)
        if config_map is None:
            if mount.optional:
                continue
            raise MissingConfigMapError(f"ConfigMap {mount.config_map!r} (volume {mount.volume!r}) not found")
        entries = config_map_entries(config_map)
        projected = mount.items if mount.items is not None else tuple((key, key) for key in entries)
        for key, relative in projected:
            if key not in entries:
                if mount.optional:
                    continue
                raise MissingConfigMapError(
                    f"ConfigMap {mount.config_map!r} has no key {key!r} (volume {mount.volume!r}, items)"
                )
            files[mount.mount_path / relative] = entries[key]
    return files


def rehome(path: str, mount_paths: Iterable[PurePosixPath], root: Path) -> str:
    """``path`` moved under ``root`` when it lies in one of the mounts; any other path unchanged."""
    candidate = PurePosixPath(path)
    for mount_path in mount_paths:
        if candidate == mount_path or mount_path in candidate.parents:
            return str(root / candidate.relative_to("/"))
    return path


def rehome_arguments(args: Iterable[str], mount_paths: Iterable[PurePosixPath], root: Path) -> list[str]:
    """Command-line arguments with every path under a mount moved under ``root``: a bare value
    (``--config /etc/x/a.json``) or a ``--flag=value`` one."""
    mounts = list(mount_paths)
    rewritten = []
    for arg in args:
        flag, equals, value = arg.partition("=")
        if equals and flag.startswith("-"):
            rewritten.append(f"{flag}={rehome(value, mounts, root)}")
        else:
            rewritten.append(rehome(arg, mounts, root))
    return rewritten


def write_files(root: Path, files: Mapping[PurePosixPath, bytes], mounts: Iterable[ConfigMapMount]) -> bool:
    """Make the mounts' directories under ``root`` hold exactly ``files``; True if anything changed.

    Each file is replaced in one rename, so a reader never sees half of a new version (the
    kubelet gets the same guarantee by swapping a symlink to a whole new directory).
    """
    changed = False
    wanted = {root / path.relative_to("/"): content for path, content in files.items()}
    for path, content in wanted.items():
        try:
            if path.read_bytes() == content:
                continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_bytes(content)
        os.replace(staging, path)
        changed = True
    for mount in mounts:
        directory = root / mount.mount_path.relative_to("/")
        directory.mkdir(parents=True, exist_ok=True)  # an empty optional volume is still a directory
        for stale in [p for p in directory.rglob("*") if p.is_file() and p not in wanted]:
            stale.unlink()
            changed = True
    return changed
