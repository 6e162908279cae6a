"""Who may read the daemon's rings and persisted files: its own user, or also one group.

Rings and ``.arrows`` files hold everything the lab measured, so they are private by
default: files 0600, directories 0700, each created with that mode (``os.open`` and
``os.mkdir`` take it at birth, the umask can only narrow it), never widened later. A
lab that wants its members to read live rings or recorded runs names a group: files are
then 0640 and directories 0750, owned by that group (the daemon's user must be in it).
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileAccess:
    """The modes (and group) of what the rings and the persister create."""

    gid: int | None = None
    """The group that may read; None: the daemon's user only."""

    @classmethod
    def for_group(cls, group: str | None) -> FileAccess:
        """Access for the group named ``group`` (None: private); raises ValueError for a
        group that does not exist or that the daemon's user is not in."""
        if group is None:
            return cls()
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(
                f"file group {group!r} does not exist on this machine (see /etc/group);"
                " create it or name another"
            ) from None
        if os.getuid() != 0 and gid not in os.getgroups() and gid != os.getgid():
            raise ValueError(
                f"the daemon's user is not in file group {group!r}, so it cannot give"
                f" files to it; add the user to the group (usermod -aG {group} $USER)"
            )
        return cls(gid)

    @property
    def file_mode(self) -> int:
        return 0o600 if self.gid is None else 0o640

    @property
    def dir_mode(self) -> int:
        return 0o700 if self.gid is None else 0o750

    def create_file(self, path: Path, flags: int) -> int:
        """``os.open(path, O_CREAT | flags)`` with :attr:`file_mode`; returns the fd."""
        fd = os.open(path, os.O_CREAT | flags, self.file_mode)
        if self.gid is not None:
            try:
                os.fchown(fd, -1, self.gid)
                os.fchmod(fd, self.file_mode)  # the umask may have taken the group's read
            except BaseException:
                os.close(fd)
                raise
        return fd

    def make_dirs(self, path: Path) -> None:
        """Create ``path`` and its missing parents, each with :attr:`dir_mode`; directories
        that exist are left as they are."""
        missing: list[Path] = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, self.dir_mode)
            except FileExistsError:  # made meanwhile (another daemon): not ours to change
                continue
            self._give_to_group(directory)

    def own_dir(self, path: Path) -> None:
        """Make ``path`` (created if missing) a directory of this daemon alone: its mode
        and group are set whatever an earlier run left."""
        self.make_dirs(path)
        os.chmod(path, self.dir_mode)
        self._give_to_group(path)

    def _give_to_group(self, path: Path) -> None:
        if self.gid is not None:
            os.chown(path, -1, self.gid)
            os.chmod(path, self.dir_mode)


PRIVATE = FileAccess()
