"""Whether a folder is on a network filesystem, where SQLite's write-ahead log is not safe.

SQLite's WAL keeps its index in shared memory beside the database: every process using it
must be on the same computer, and the locks must be real. Over NFS, SMB/CIFS (a mapped
network drive) or WSL's 9p they are not, and a store can be damaged without an error.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ncpfs", "ceph", "glusterfs",
                                 "fuse.sshfs", "fuse.glusterfs", "fuse.rclone"})
_DRIVE_REMOTE = 4  # GetDriveTypeW


def network_filesystem(folder: Path) -> str | None:
    """The kind of network filesystem `folder` is on ("cifs", "nfs4", "网络驱动器"…); None for a local
    disk, or where it cannot be told."""
    folder = folder.resolve()
    if os.name == "nt":
        return _windows_network_drive(folder)
    try:
        mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: nothing to tell it by
        return None
    return network_type_in(mounts, PurePosixPath(folder))


def network_type_in(mountinfo: str, folder: PurePosixPath) -> str | None:
    """The network filesystem type of the mount (in /proc/self/mountinfo's text) that holds `folder`."""
    best, kind = None, None
    for line in mountinfo.splitlines():
        head, _, tail = line.partition(" - ")
        fields = head.split()
        if len(fields) < 5 or not tail:
            continue
        mount_point = PurePosixPath(_unescaped(fields[4]))
        if (folder == mount_point or mount_point in folder.parents) and \
                (best is None or len(mount_point.parts) > len(best.parts)):
            best, kind = mount_point, tail.split()[0]
    return kind if kind in NETWORK_FILESYSTEMS else None


def _unescaped(field: str) -> str:
    """mountinfo writes a space, tab, newline and backslash in a path as octal escapes (\\040…)."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _windows_network_drive(folder: Path) -> str | None:
    text = str(folder)
    if text.startswith("\\\\"):  # \\server\share, or a mapped drive resolved to it
        return "网络共享"
    import ctypes  # Windows only

    drive = os.path.splitdrive(text)[0] + "\\"
    return "网络驱动器" if ctypes.windll.kernel32.GetDriveTypeW(drive) == _DRIVE_REMOTE else None
