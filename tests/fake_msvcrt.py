"""A stand-in for Windows' ``msvcrt.locking`` on Linux (tests only), faithful in what the run lock needs.

``msvcrt.locking(fd, mode, nbytes)`` locks ``nbytes`` bytes from the file position of ``fd``. Such a
lock belongs to the open file (not to the process: a second ``open`` of the same file in the same
process is refused too), ends when that file is closed, and the operating system drops it when its
process dies, however it dies. Linux's open-file-description locks (``F_OFD_SETLK``) behave the same,
so this module is ``msvcrt.locking`` built on them. It works across processes, so a test can kill a
holder and see that its lock is gone.

Install it with ``sys.modules["msvcrt"] = fake_msvcrt`` (and ``sys.modules["fcntl"] = None`` to look
like Windows); :data:`AVAILABLE` is False where the system has no OFD locks (then skip).
"""
import errno
import fcntl
import os
import struct

LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4  # msvcrt's values

AVAILABLE = hasattr(fcntl, "F_OFD_SETLK")


def locking(fd, mode, nbytes):
    """As ``msvcrt.locking``: PermissionError (EACCES) when another open file holds a byte of the range."""
    start = os.lseek(fd, 0, os.SEEK_CUR)
    kind = fcntl.F_UNLCK if mode == LK_UNLCK else fcntl.F_RDLCK if mode in (LK_RLCK, LK_NBRLCK) else fcntl.F_WRLCK
    command = fcntl.F_OFD_SETLKW if mode in (LK_LOCK, LK_RLCK) else fcntl.F_OFD_SETLK
    # struct flock: l_type, l_whence (short), l_start, l_len (off_t), l_pid (int, 0 for OFD locks)
    flock = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, nbytes, 0)
    try:
        fcntl.fcntl(fd, command, flock)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise PermissionError(errno.EACCES, "Permission denied") from None  # what msvcrt raises
        raise
