"""The sandbox a learner's code runs in: another user, its own mounts, limits, and no way out.

When the grader runs as root (the usual case on a shared JupyterHub), each workbook's
learner process, before it runs any learner code:

- enters new mount, network and IPC namespaces: no network, no System V shared memory,
  semaphores or message queues shared with any other process; every submission, the grades
  folder, the kit's ``solutions/`` and other non-code folders are covered by empty
  read-only mounts; ``ldkkit/reference.py`` (and its bytecode) are covered by a stub;
  ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are fresh, private and small, and every other
  mount is read-only, so no world-writable folder (``/run/lock``, say) keeps anything;
- gets resource limits it cannot raise again (address space, CPU time, open files,
  processes, file size, no core dumps);
- joins a cgroup of its own, so all its processes, however many sessions they make, share
  one part of the CPU (where the machine has a cgroup to give: else the grader warns), and
  is the first process the kernel kills when memory runs out;
- becomes an unprivileged user of its own (a numeric uid no account uses, one per
  workbook graded at once), with no supplementary groups;
- works in a scratch folder that is its HOME and TMPDIR, on the private ``/tmp``.

When the workbook ends, every process of that uid is killed (:func:`kill_uid`), so nothing
outlives it. Without root only the limits, the scratch folder, a process group of its own
and a stub ``ldkkit.reference`` apply: see the README for what that does not guarantee.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_module
import os
import pwd
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
#: The flags a remount must give again to keep them (statvfs's ST_* values are the same as MS_*): nosuid, nodev,
#: noexec, noatime, nodiratime, relatime.
_KEPT_FLAGS = 2 | 4 | 8 | 1024 | 2048 | 4096
#: The private folders each learner process gets, with their size (tmpfs is memory: small).
PRIVATE = (("/tmp", "128m"), ("/var/tmp", "16m"), ("/dev/shm", "16m"))
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
#: The first uid tried for sandboxes; uids with an account, or with processes, are skipped.
UID_BASE = 64_100
UID_SPAN = 400
SCRATCH = "/tmp/ldkkit-sandbox"
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass
class Limits:
    """What one learner process may use (resource.setrlimit, hard and soft alike)."""

    memory_mb: int = 2048
    cpu_s: int = 120
    open_files: int = 256
    processes: int = 64
    file_mb: int = 64

    def apply(self) -> None:
        mib = 1024 * 1024
        for kind, value in ((resource.RLIMIT_AS, self.memory_mb * mib), (resource.RLIMIT_CPU, self.cpu_s),
                            (resource.RLIMIT_NOFILE, self.open_files), (resource.RLIMIT_NPROC, self.processes),
                            (resource.RLIMIT_FSIZE, self.file_mb * mib), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(kind, (value, value))


@dataclass
class Jail:
    """How to confine one learner process; made by the grader, applied by the process itself."""

    uid: int | None  # None: the grader is not root, so the learner keeps its user
    limits: Limits
    hide: list[str] = field(default_factory=list)  # folders covered by an empty read-only mount
    stubs: dict[str, str] = field(default_factory=dict)  # file -> stub file bind-mounted over it
    scratch: str = SCRATCH

    def to_dict(self) -> dict[str, object]:
        return {"uid": self.uid, "limits": vars(self.limits), "hide": self.hide, "stubs": self.stubs,
                "scratch": self.scratch}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Jail:
        return cls(data["uid"], Limits(**data["limits"]), list(data["hide"]), dict(data["stubs"]),  # type: ignore
                   str(data["scratch"]))


def enter(jail: Jail) -> list[str]:
    """Confine this process (the learner process, before any learner code); returns what was not possible."""
    missing: list[str] = []
    if jail.uid is not None:
        _first_to_go(missing)
        _own_cgroup(jail, missing)
        _namespaces(jail, missing)
    if os.path.lexists(jail.scratch) and jail.uid is not None:
        raise SystemExit(f"the scratch folder {jail.scratch} already exists")  # never adopt a planted folder
    os.makedirs(jail.scratch, mode=0o700, exist_ok=True)
    if jail.uid is not None:
        os.chown(jail.scratch, jail.uid, jail.uid)
    os.chdir(jail.scratch)
    jail.limits.apply()
    _no_new_privileges(missing)
    if jail.uid is not None:
        os.setgroups([])
        os.setresgid(jail.uid, jail.uid, jail.uid)
        os.setresuid(jail.uid, jail.uid, jail.uid)
        if os.getuid() == 0 or os.geteuid() == 0:  # never run learner code as root, whatever happened
            raise SystemExit("the sandbox could not drop root")
    os.umask(0o077)
    os.environ.clear()
    os.environ.update({"HOME": jail.scratch, "TMPDIR": jail.scratch, "PATH": "/usr/local/bin:/usr/bin:/bin",
                       "LANG": "C.UTF-8", "LDKKIT_PROGRESS_FILE": f"{jail.scratch}/progress.json",
                       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    return missing


def cgroups(uid: int) -> list[str]:
    """The cgroups of the sandbox of ``uid``, under the ones this process is in (a limit on the grader holds its
    learners too): cgroup v2's one, or v1's cpu and pids ones, where those controllers are mounted; else none."""
    own: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                own[controllers] = path.rstrip("/")
    except OSError:  # (no /proc, or no cgroups: none to make, none to remove)
        return []
    if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):  # cgroup v2 only
        return [f"{CGROUP_ROOT}{own.get('', '')}/ldkkit-{uid}"]
    return [f"{CGROUP_ROOT}/{controllers}{path}/ldkkit-{uid}" for controllers, path in sorted(own.items())
            if {"cpu", "pids"} & set(controllers.split(",")) and os.path.isdir(f"{CGROUP_ROOT}/{controllers}")]


def _first_to_go(missing: list[str]) -> None:
    """This process, and every one it starts, first to be killed when the machine runs out of memory."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:  # (written as root: the learner cannot lower it again)
            f.write("1000")
    except OSError as e:
        missing.append(f"no oom_score_adj ({e.strerror})")


def _own_cgroup(jail: Jail, missing: list[str]) -> None:
    """This process, and every one it starts, in a cgroup of its own: one share of the CPU however many processes
    it starts (a process that calls setsid() outside a cgroup gets an autogroup, a share, of its own), and at most
    ``limits.processes`` tasks."""
    held: set[str] = set()
    why = "no cpu controller here"
    try:
        for folder in cgroups(jail.uid):  # type: ignore[arg-type]
            controllers = _cgroup_controllers(folder)
            if controllers:
                os.makedirs(folder, mode=0o755, exist_ok=True)
                if "pids" in controllers:
                    Path(folder, "pids.max").write_text(str(jail.limits.processes))
                Path(folder, "cgroup.procs").write_text(str(os.getpid()))
                held |= controllers
    except OSError as e:
        why = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    if "cpu" not in held:
        missing.append(f"no cgroup of its own ({why}): a learner's processes, each in a session of its own, take "
                       "CPU time from the other workbooks graded at once (grade where root may make cgroups with "
                       "the cpu controller: cgroup v1's cpu hierarchy, or a cgroup v2 that lends it to its children)")


def _cgroup_controllers(folder: str) -> set[str]:
    """The controllers that will hold ``folder`` (cgroup v2: those its parent gives its children, given them here
    if need be; v1: its hierarchy's)."""
    parent = os.path.dirname(folder)
    if not os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
        return {"cpu", "pids"} & set(parent[len(CGROUP_ROOT) + 1:].split("/", 1)[0].split(","))
    wanted = {"cpu", "pids"} & set(Path(parent, "cgroup.controllers").read_text().split())
    given = set(Path(parent, "cgroup.subtree_control").read_text().split())
    if wanted - given:  # (refused where the grader's own cgroup holds processes: v2 has them only in leaves)
        Path(parent, "cgroup.subtree_control").write_text(" ".join(f"+{name}" for name in sorted(wanted - given)))
    return wanted


def remove_cgroups(uid: int) -> None:
    """Remove the sandbox cgroups of ``uid`` (:func:`kill_uid` does, once it has killed every process in them)."""
    for folder in cgroups(uid):
        for _ in range(50):
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                break
            except OSError:  # (busy a moment longer, while its last process exits)
                time.sleep(0.01)
                continue
            break


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _namespaces(jail: Jail, missing: list[str]) -> None:
    """New mount, network and IPC namespaces, with everything the learner must not see covered, and nothing it
    may write outside its private folders (a world-writable folder would carry data to a learner graded later)."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC) != 0:  # a container without CAP_SYS_ADMIN, say
        errno = ctypes.get_errno()
        missing.append(f"no mount or network namespace, nor an IPC one ({os.strerror(errno)}): learners can reach "
                       "the network, read what their uid may read and share memory; /tmp and /run/lock are shared")
        return
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE, None)
    _expose(libc, _needed_paths(), missing)
    for path, stub in jail.stubs.items():
        if os.path.isfile(path):
            try:
                _mount(libc, stub, path, None, MS_BIND, None)
            except OSError as e:
                missing.append(f"could not cover {path}: {e}")
    for path in jail.hide:
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                _mount(libc, "tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
            except OSError as e:
                missing.append(f"could not hide {path}: {e}")
    _read_only(libc, missing)
    needed = _needed_paths()
    for private, size in PRIVATE:
        if not os.path.isdir(private):
            continue
        if any(p == private or p.startswith(private + "/") for p in needed):
            missing.append(f"{private} is shared: the kit or Python lives there")
            # A mount of its own, made writable again; what is mounted inside it (covers, hidden folders) stays.
            _mount(libc, private, private, None, MS_BIND | MS_REC, None)
            _remount(libc, private, 0)
        else:
            _mount(libc, "tmpfs", private, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")


def _read_only(libc: ctypes.CDLL, missing: list[str]) -> None:
    """Every mount read-only in this namespace, but the kernel's own (/proc, /sys); device files still work."""
    for target in _mount_points():
        if target in ("/proc", "/sys") or target.startswith(("/proc/", "/sys/")):
            continue
        try:
            _remount(libc, target, MS_RDONLY)
        except OSError as e:  # (a mount under a covered folder is out of reach: its path is gone)
            if e.errno != errno_module.ENOENT:
                missing.append(f"{target} stays writable: {e}")


def _mount_points() -> list[str]:
    """Where each mount of this namespace is (``/proc/self/mountinfo`` writes a space in a path as ``\\040``)."""
    with open("/proc/self/mountinfo", "rb") as f:
        fields = [line.split(b" ")[4] for line in f]
    return [os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field)) for field in fields]


def _remount(libc: ctypes.CDLL, target: str, flags: int) -> None:
    """Change this namespace's mount at ``target`` only, keeping its nosuid, nodev, noexec and time flags."""
    kept = os.statvfs(target).f_flag & _KEPT_FLAGS
    _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | kept | flags, None)


#: Users' homes: hidden from a learner process but for the folders Python and the kit are loaded from (:func:`_expose`).
HOMES = "/home"


def _needed_paths() -> list[str]:
    """The folders Python and the kit are loaded from (the learner process must read them)."""
    paths = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable), *sys.path)
             if p and os.path.isdir(p)} - {"/"}
    return sorted(p for p in paths if not any(p.startswith(q + "/") for q in paths))


def _blocker(path: str) -> str | None:
    """The first folder on the way to ``path`` that other users cannot enter (``/root``, say)."""
    current = "/"
    for part in Path(path).parts[1:-1]:
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


def _expose(libc: ctypes.CDLL, needed: list[str], missing: list[str]) -> None:
    """Make Python and the kit reachable when they live under a private folder (a pyenv in /root), or in /home.

    The private folder is covered by an empty tmpfs (so the rest of it stays hidden), and the
    folders needed are bind-mounted back at their own paths: nothing else of it is visible.
    /home is covered always: another checkout of the kit there (an instructor's) holds the
    solutions, which a cell could read and run as its own.
    """
    homes = {HOMES: []} if os.path.isdir(HOMES) and not os.path.islink(HOMES) else {}
    by_blocker: dict[str, list[str]] = dict(homes)
    for path in needed:
        blocker = HOMES if homes and path.startswith(HOMES + "/") else _blocker(path)
        if blocker is not None:
            by_blocker.setdefault(blocker, []).append(path)
    old_umask = os.umask(0o022)
    try:
        for blocker, paths in by_blocker.items():
            fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in paths]
            _mount(libc, "tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
            for path, fd in zip(paths, fds, strict=True):
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
                os.close(fd)
                if not os.stat(path).st_mode & 0o005 == 0o005:
                    missing.append(f"{path} is not readable by other users")
    finally:
        os.umask(old_umask)


def _mount(libc: ctypes.CDLL, source: str | None, target: str, kind: str | None, flags: int,
           data: str | None) -> None:
    def enc(text: str | None) -> bytes | None:  # (a path that is not UTF-8 is passed on as its own bytes)
        return os.fsencode(text) if text is not None else None

    if libc.mount(enc(source), enc(target), enc(kind), ctypes.c_ulong(flags), enc(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def _no_new_privileges(missing: list[str]) -> None:
    """No setuid binary (sudo, su) can give the learner back what it lost."""
    try:
        if _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            missing.append("no_new_privs")
    except (OSError, AttributeError):
        missing.append("no_new_privs")


def become_subreaper() -> None:
    """Orphans of this process's descendants come back to it, so they can be found and killed."""
    try:
        _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --- uids and cleaning up ---------------------------------------------------------------------


#: The folder that holds the kit this process runs (the ``ldkkit`` package's parent).
KIT_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kit_python(module: str) -> list[str]:
    """The command that runs ``module``'s ``main()`` from the kit this process runs. ``python -m`` would import an
    ``ldkkit`` folder in the current directory first: a learner's checkout of the workshop holds one, theirs to
    change, and the grader's worker runs as root."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {KIT_PARENT!r}); '' in sys.path and "
            f"sys.path.remove(''); from {module} import main; sys.exit(main())"]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class UidLease:
    """Uids held by one batch: a lock file each, so two graders on one machine never share one."""

    uids: list[int]
    _locks: list[int] = field(default_factory=list)

    def release(self) -> None:
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()


def lease_uids(count: int) -> UidLease:
    """``count`` uids that no account, no process and no other grader uses, for this batch's sandboxes."""
    import fcntl

    folder = Path("/run/ldkkit" if os.path.isdir("/run") else "/var/lock/ldkkit")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    busy = {uid for uid, _ in _processes()}
    lease = UidLease([])
    for uid in range(UID_BASE, UID_BASE + UID_SPAN):
        if uid in busy or _has_account(uid):
            continue
        fd = os.open(folder / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # another grader holds it
            continue
        lease.uids.append(uid)
        lease._locks.append(fd)
        if len(lease.uids) == count:
            return lease
    lease.release()
    raise RuntimeError(f"no {count} free uids between {UID_BASE} and {UID_BASE + UID_SPAN}")


def free_uids(count: int) -> list[int]:
    """``count`` uids that no account and no process uses now (unleased: for a one-off run)."""
    busy = {uid for uid, _ in _processes()}
    found = [uid for uid in range(UID_BASE, UID_BASE + UID_SPAN) if uid not in busy and not _has_account(uid)]
    if len(found) < count:
        raise RuntimeError(f"no {count} free uids between {UID_BASE} and {UID_BASE + UID_SPAN}")
    return found[:count]


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _processes() -> list[tuple[int, int]]:
    """(real uid, pid) of every live process (zombies are dead: only their parent's bookkeeping is left)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields.get("State", "").strip().startswith("Z") or "Uid" not in fields:
                continue
            out.append((int(fields["Uid"].split()[0]), int(entry)))
    return out


def reap() -> None:
    """Collect this process's dead children (a subreaper inherits the learner's orphans)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pids_of(uid: int) -> list[int]:
    return [pid for owner, pid in _processes() if owner == uid]


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (as that uid: ``kill -KILL -1``), until none is left; then its cgroups go."""
    for _ in range(50):
        if not pids_of(uid):
            remove_cgroups(uid)
            return
        try:  # as that uid, kill -1 reaches every process of it at once, faster than it can fork
            subprocess.run(["kill", "-KILL", "-1"], user=uid, group=uid, extra_groups=[], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:  # no kill(1) on this machine: one by one, below
            pass
        for pid in pids_of(uid):  # and from here, in case kill itself could not start
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
        reap()
    raise RuntimeError(f"processes of uid {uid} survive SIGKILL: {pids_of(uid)}")


def kill_group(pgid: int) -> None:
    """Kill every process of process group ``pgid``, until none is left alive: a SIGKILL takes effect a moment
    after it is sent, and whoever returns from here promises that nothing of the group runs any more."""
    for _ in range(50):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:  # no process in the group at all
            return
        if not _group(pgid):  # (zombies are dead: only their parent's bookkeeping is left)
            return
        time.sleep(0.01)
    raise RuntimeError(f"processes of group {pgid} survive SIGKILL: {_group(pgid)}")


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                state, _, group = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if int(group) == pgid and state != "Z":
                found.append(int(entry))
    return found


def kill_descendants(root_pid: int) -> None:
    """Kill every process whose parent chain leads to ``root_pid`` (subreaper orphans included)."""
    for _ in range(50):
        children = _descendants(root_pid)
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
        reap()


def _descendants(root_pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], {root_pid}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found.extend(frontier)
    return [pid for pid in found if _state(pid) != "Z"]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"
