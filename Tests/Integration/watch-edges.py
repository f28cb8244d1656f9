#!/usr/bin/env python3
"""`notmuch-deliver watch` at the edges: what the kernel, the disk and
other writers do to it. Each case ends as watch.py's do: the watcher's
database must be what a fresh `notmuch new` makes of a copy of the tree,
and `notmuch new` afterwards must find nothing.

  overflow      the inotify queue overflows (the watcher is stopped with
                SIGSTOP while more events than fs.inotify.max_queued_events
                come, then mail arrives, goes and changes flags, all
                unheard): one log line, and a scan finds it all.
  watches       fs.inotify.max_user_watches runs out (lowered inside a
                user namespace, which needs no root): one log line however
                many folders go unwatched, and the periodic scan
                (--unwatched-scan-interval) covers them, new ones too.
  disk-full     the disk under the database fills up during a commit (a
                small tmpfs mounted in a user and mount namespace): nothing
                is lost, and once there is room again a start reconciles.
  lock-sigterm  SIGTERM while the watcher waits for the write lock that
                another writer (`notmuch tag --batch`) holds: it exits 0 at
                once, not after its lock timeout, and nothing is lost.

    python3 Tests/Integration/watch-edges.py PATH/TO/notmuch-deliver [CASE...]

Exit status: 0 every case that could run passed (the others are listed
as skipped, with the reason); 1 a check failed; 77 no case could run.
Run as root, the watcher and the tree are nobody's, as in watch.py.
"""

import fcntl
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watch  # noqa: E402  (the differential test's setup, generator and comparison)

GRACE = 0.5
IGNORED = {watch.RULE_TAG, watch.USER_TAG}


class Skipped(Exception):
    pass


def as_user(function):
    """Runs `function` in a child as the watcher's user (the files are a
    sync tool's, owned as the watcher's user)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            watch.as_nobody()
            function()
        except BaseException:
            code = 1
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    watch.check(status == 0, "a file operation as the watcher's user failed (above)")


def generator(setup, serial):
    """A generator to make more mail in the prepared tree, with names of its own."""
    made = watch.Generator(setup.mail, 7)
    made.serial = serial
    return made


def mail_files(setup, folder, sub):
    return sorted(os.listdir(os.path.join(setup.mail, folder, sub)))


def converges(setup, within, what):
    """Waits until the watcher's database is notmuch new's view of the tree."""
    fresh = watch.without(watch.fresh_view(setup), IGNORED)
    deadline = time.time() + within
    while True:
        time.sleep(GRACE + 0.3)
        state = setup.state(setup.config, setup.mail)
        diff = watch.differences(watch.without(state, IGNORED), fresh)
        if not diff or time.time() > deadline:
            break
    watch.check(not diff, f"{what}: the watcher's database differs from notmuch new's view ({len(diff)} messages):\n"
                + "\n".join(diff[:10]))
    return state


def stops_cleanly(setup, watcher, what):
    """SIGTERM, exit 0, and notmuch new finds nothing afterwards."""
    time.sleep(1.5)  # directory mtimes of the last second are stored a second later
    watcher.send_signal(signal.SIGTERM)
    status = watcher.wait(timeout=60)
    watch.check(status == 0, f"{what}: the watcher exited {status} on SIGTERM")
    report = setup.notmuch(setup.config, "new", "--verbose").strip()
    watch.check(report.endswith("No new mail.") and not any(w in report for w in ("Added", "Removed", "Detected")),
                f"{what}: notmuch new after the watcher did something: {report[-300:]!r}")


def log_text(log):
    with open(log) as f:
        return f.read()


def test_overflow(binary):
    limit = int(open("/proc/sys/fs/inotify/max_queued_events").read())
    if limit > 1_000_000:
        raise Skipped(f"fs.inotify.max_queued_events is {limit}: too many events to flood in a test")
    # The limit is not lowered: fs.inotify.max_queued_events is one value
    # for the whole machine, and every other program's new inotify queue
    # would get it. A stopped watcher's queue fills up instead.
    setup = watch.Setup(binary, "overflow")
    watcher = None
    try:
        watch.prepare(setup, 31)
        watcher, log = watch.start_watcher(setup)
        os.kill(watcher.pid, signal.SIGSTOP)

        def flood_then_change():
            # Each rename is two events (moved from, moved to).
            folder = os.path.join(setup.mail, "INBOX", "cur")
            name = mail_files(setup, "INBOX", "cur")[0]
            a, b = os.path.join(folder, name), os.path.join(folder, name.replace(":2,", "x:2,"))
            for _ in range(limit // 2 + 500):
                os.rename(a, b)
                os.rename(b, a)
            # Unheard: the queue is full.
            made = generator(setup, 50_000)
            made.folders = ["INBOX", "work", "lists/dev"]
            for _ in range(5):
                made.arrive()
            os.unlink(os.path.join(setup.mail, "work", "cur", mail_files(setup, "work", "cur")[0]))
            old = os.path.join(setup.mail, "lists/dev", "cur", mail_files(setup, "lists/dev", "cur")[0])
            os.rename(old, old.split(":2,")[0] + ":2,FRS")
            made.maildir("after-overflow")
            made.deliver("after-overflow", made.message("after-overflow@example.org"), "S")

        as_user(flood_then_change)
        os.kill(watcher.pid, signal.SIGCONT)
        state = converges(setup, GRACE + 20, "after an inotify queue overflow")
        watch.check("after-overflow@example.org" in state, "a folder made after the overflow was not indexed")
        said = log_text(log).count("inotify queue overflowed")
        watch.check(said >= 1, "the overflow was not logged (was the queue not full?)")
        watch.check(watcher.poll() is None, f"the watcher died: {watch.stderr_of(setup)}")
        stops_cleanly(setup, watcher, "after an overflow")
        return f"{limit // 2 + 500} renames overflowed a {limit}-event queue; the scan found what went unheard"
    finally:
        cleanup(setup, watcher)


def namespace_prefix(limit):
    """A command prefix that runs its command with at most `limit` inotify
    watches: the limit is set in a user namespace of ours (its root may
    set it, and the kernel counts a child namespace's watches against it
    too), and the command runs in a child namespace as uid 1000, since
    the watcher refuses to run as root."""
    return ["unshare", "--user", "--map-root-user", "sh", "-c",
            f'echo {limit} > /proc/sys/user/max_inotify_watches && '
            'exec unshare --user --map-user=1000 --map-group=1000 "$@"', "sh"]


def user_namespaces_work():
    if shutil.which("unshare") is None:
        return "the unshare command is not installed (util-linux)"
    probe = subprocess.run(namespace_prefix(3) + ["id", "-u"], preexec_fn=watch.as_nobody,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if probe.returncode != 0 or probe.stdout.strip() != b"1000":
        return f"user namespaces are not available here: {probe.stdout.decode(errors='replace').strip()}"
    return None


def test_watches(binary):
    reason = user_namespaces_work()
    if reason:
        raise Skipped(reason)
    setup = watch.Setup(binary, "watches")
    watcher = None
    try:
        watch.prepare(setup, 32)
        # Root, INBOX, INBOX/cur, INBOX/new: lists/ and work/ go unwatched.
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE), "--unwatched-scan-interval", "2"],
                                                prefix=namespace_prefix(4))
        watch.check(log_text(log).count("no inotify watches left") == 1, "no watches left: not said once at start")

        def arrivals_everywhere():
            made = generator(setup, 60_000)
            made.folders = ["INBOX", "work", "lists/dev"]
            for folder in made.folders:
                made.deliver(folder, made.message(f"w-{folder.replace('/', '-')}@example.org"), None)
                made.deliver(folder, made.message(f"w2-{folder.replace('/', '-')}@example.org"), "S")
            os.unlink(os.path.join(setup.mail, "work", "cur", mail_files(setup, "work", "cur")[0]))
            made.maildir("later")  # a new folder, which cannot be watched either
            made.deliver("later", made.message("later@example.org"), "FS")

        as_user(arrivals_everywhere)
        state = converges(setup, 2 + GRACE + 15, "with folders left unwatched")
        watch.check("w-work@example.org" in state and "later@example.org" in state,
                    "mail in unwatched folders was not indexed")

        def more_later():
            made = generator(setup, 70_000)
            made.deliver("lists/dev", made.message("w3@example.org"), None)
            made.deliver("later", made.message("w4@example.org"), "RS")

        as_user(more_later)
        state = converges(setup, 2 + GRACE + 15, "with folders left unwatched, a second round")
        watch.check("w3@example.org" in state and "w4@example.org" in state, "the second round was not indexed")
        said = log_text(log).count("no inotify watches left")
        watch.check(said == 1, f"no watches left: said {said} times, not once")
        stops_cleanly(setup, watcher, "with folders left unwatched")
        return "4 watches for 11 folders: said once, the unwatched ones scanned every 2 s, a new one too"
    finally:
        cleanup(setup, watcher)


def test_disk_full(binary):
    reason = user_namespaces_work()
    if reason:
        raise Skipped(reason)
    # The database's disk fills up: a small tmpfs, which a user and mount
    # namespace of our own may mount. It is visible only inside, so the
    # whole case runs there (disk_full_inside).
    # (The system's python: one under root's home is not nobody's to run.)
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", python,
                             os.path.abspath(__file__), binary, "--inside-disk-full"],
                            preexec_fn=watch.as_nobody, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = result.stdout.decode(errors="replace").strip()
    if result.returncode == 77:
        raise Skipped(output.splitlines()[-1] if output else "no reason given")
    watch.check(result.returncode == 0, f"the disk-full case failed:\n{output}")
    return output.splitlines()[-1]


def disk_full_inside(binary):
    """As root of a user and mount namespace: the database on a 16 MB
    tmpfs beside the mail, the watcher as uid 1000 of a child namespace."""
    watch.DROPS_ROOT = False
    setup = watch.Setup(binary, "disk-full")
    # libnotmuch, read in this process, looks for hooks under $HOME: ours.
    os.environ["HOME"] = setup.dir
    os.environ.pop("XDG_CONFIG_HOME", None)
    watcher = None
    mounted = None
    try:
        database = os.path.join(setup.dir, "db")
        os.mkdir(database)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", database],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if mount.returncode != 0:
            print(f"SKIPPED: cannot mount a tmpfs in a user namespace: {mount.stdout.decode(errors='replace')}")
            return 77
        mounted = database
        with open(setup.config) as f:
            config = f.read()
        with open(setup.config, "w") as f:
            f.write(config.replace(f"path={setup.mail}\n", f"path={database}\nmail_root={setup.mail}\n"))
        watch.prepare(setup, 33)
        child = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE)], prefix=child)
        filler = os.path.join(database, "filler")
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(descriptor, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(descriptor)
        made = generator(setup, 80_000)
        made.folders = ["INBOX", "work"]
        arrived = [made.arrive() for _ in range(40)]
        # The commit fails for want of room: the watcher says so and stops
        # (75), or keeps trying; either way, nothing may be lost.
        deadline = time.time() + 30
        # (Xapian's message names the block it could not write, not the errno.)
        def says_so():
            said = (log_text(log) + watch.stderr_of(setup)).lower()
            return "no space" in said or "xapian exception" in said or "error writing" in said

        while time.time() < deadline and watcher.poll() is None and not says_so():
            time.sleep(0.2)
        status = watcher.poll()
        watch.check(says_so(), "the disk filled up and neither the log nor stderr say so: "
                               f"{(log_text(log) + watch.stderr_of(setup))[-500:]!r}")
        if status is None:
            time.sleep(1)
            status = watcher.poll()
        if status is not None:
            watch.check(status == 75, f"the watcher exited {status} on a full disk, not 75 (a temporary failure)")
        os.unlink(filler)
        if status is None:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=60)
        check = subprocess.run(["xapian-check", os.path.join(database, "xapian")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT) if shutil.which("xapian-check") else None
        if check is not None:
            watch.check(check.returncode == 0, f"xapian-check after the full disk: {check.stdout.decode()[-500:]}")
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE)], prefix=child, log_name="watch2.log")
        state = converges(setup, GRACE + 20, "after the disk was full")
        missing = [mid for mid in arrived if mid not in state]
        watch.check(not missing, f"lost after the full disk: {missing[:5]}")
        stops_cleanly(setup, watcher, "after the disk was full")
        first = "exited 75" if status is not None else "kept running"
        print(f"a full disk during the commit of 40 arrivals: the watcher {first}, the next start indexed all")
        return 0
    except watch.Failure as failure:
        print(f"FAILED: {failure}")
        return 1
    finally:
        if watcher and watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        if mounted:
            subprocess.run(["umount", mounted])
        cleanup(setup, watcher)


def lock_is_held(setup):
    """An F_OFD_GETLK probe on Xapian's flintlock, as the watcher's own."""
    path = os.path.join(setup.mail, ".notmuch", "xapian", "flintlock")
    try:
        descriptor = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        request = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(descriptor, getattr(fcntl, "F_OFD_GETLK", 36), request)
        return struct.unpack("hhqqi", answer)[0] != fcntl.F_UNLCK
    finally:
        os.close(descriptor)


def test_lock_sigterm(binary):
    setup = watch.Setup(binary, "lock")
    watcher = None
    holder = None
    try:
        watch.prepare(setup, 34)
        lock_timeout = 60
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE), "--lock-timeout", str(lock_timeout)])
        # notmuch tag --batch opens the database for writing and keeps it
        # open while its input is: the write lock, held for as long as we like.
        holder = subprocess.Popen(["notmuch", "tag", "--batch"], env=setup.env(setup.config),
                                  preexec_fn=watch.as_nobody, stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while not lock_is_held(setup) and time.time() < deadline:
            if holder.poll() is not None:
                raise watch.Failure(f"notmuch tag --batch exited {holder.returncode}: {holder.stderr.read()!r}")
            time.sleep(0.05)
        watch.check(lock_is_held(setup), "notmuch tag --batch did not take the write lock")
        arrived = []

        def arrive():
            made = generator(setup, 90_000)
            made.folders = ["INBOX"]
            arrived.extend(made.arrive() for _ in range(3))
            with open(os.path.join(setup.dir, "arrived"), "w") as f:
                f.write("\n".join(arrived))

        as_user(arrive)
        arrived = open(os.path.join(setup.dir, "arrived")).read().split()
        # The burst is due after its quiet window; then the watcher waits for the lock.
        time.sleep(1.5)
        sent = time.monotonic()
        watcher.send_signal(signal.SIGTERM)
        try:
            status = watcher.wait(timeout=lock_timeout + 30)
        except subprocess.TimeoutExpired:
            raise watch.Failure("the watcher did not exit on SIGTERM")
        took = time.monotonic() - sent
        watch.check(status == 0, f"SIGTERM while waiting for the lock: exit status {status}, not 0")
        # Bounded well below the lock timeout: not waiting it out.
        watch.check(took < lock_timeout / 4,
                    f"SIGTERM while waiting for the lock took {took:.1f} s: the lock timeout ({lock_timeout} s) was waited out")
        state = setup.state(setup.config, setup.mail)
        watch.check(not any(mid in state for mid in arrived),
                    "the arrivals were indexed while another writer held the lock (the case did not happen)")
        holder.stdin.close()
        holder.wait(timeout=30)
        holder = None
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE)], log_name="watch2.log")
        state = converges(setup, GRACE + 20, "after SIGTERM under the lock")
        watch.check(all(mid in state for mid in arrived), "an arrival was lost after SIGTERM under the lock")
        stops_cleanly(setup, watcher, "after SIGTERM under the lock")
        return f"exit 0 {took:.2f} s after SIGTERM (lock timeout {lock_timeout} s); the next start indexed the 3 arrivals"
    finally:
        if holder:
            holder.kill()
            holder.wait()
        cleanup(setup, watcher)


def cleanup(setup, watcher):
    if watcher and watcher.poll() is None:
        try:
            os.kill(watcher.pid, signal.SIGCONT)
        except OSError:
            pass
        watcher.kill()
        watcher.wait()
    watch.remove_unless_kept(setup)


CASES = {"overflow": test_overflow, "watches": test_watches, "disk-full": test_disk_full,
         "lock-sigterm": test_lock_sigterm}


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    binary = os.path.abspath(args[0])
    if "--inside-disk-full" in args:
        return disk_full_inside(binary)
    if not os.access(binary, os.X_OK):
        watch.skip(f"{binary} is not built (make build)")
    if shutil.which("notmuch") is None:
        watch.skip("the notmuch CLI is not installed")
    if not os.path.isdir("/proc/sys/fs/inotify"):
        watch.skip("no inotify on this kernel")
    wanted = args[1:] or list(CASES)
    passed, skipped, failed = [], [], []
    for name in wanted:
        try:
            print(f"ok: {name}: {CASES[name](binary)}", flush=True)
            passed.append(name)
        except Skipped as reason:
            print(f"SKIPPED: {name}: {reason}", flush=True)
            skipped.append(name)
        except watch.Failure as failure:
            print(f"FAILED: {name}: {failure}", flush=True)
            failed.append(name)
    print(f"watch-edges: {len(passed)} passed, {len(skipped)} skipped, {len(failed)} failed")
    if failed:
        return 1
    return 0 if passed else 77


if __name__ == "__main__":
    sys.exit(main())
