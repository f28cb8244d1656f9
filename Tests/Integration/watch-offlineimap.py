#!/usr/bin/env python3
"""`notmuch-deliver watch` with another real sync tool: Debian's
offlineimap3 syncing from a local Dovecot IMAP server (dovecot-imapd, on
loopback, set up as watch-mbsync.py sets it up) into the watched maildir.
Mail is appended over IMAP, flagged, moved between folders and expunged
on the server; after each sync the watcher's database must be what a
fresh `notmuch new` makes of the tree, the rule's tag must be on the new
mail it matches, and a tag the user set must survive its message's move
to another folder. offlineimap names its files differently from mbsync
(`,U=uid,FMD5=...:2,FLAGS`), keeps its state outside the maildir, and
syncs one folder after another: a move is a download in one folder and an
expunge in the other, in the order of the folders.

    python3 Tests/Integration/watch-offlineimap.py PATH/TO/notmuch-deliver

Exit status: 0 passed, 1 failed, 77 it cannot run here (the reason after
"SKIPPED:"): it needs root (dovecot, and the watcher then runs as nobody)
and the packages offlineimap3 and dovecot-imapd (`make deps-e2e`).
"""

import importlib
import imaplib
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watch  # noqa: E402  (the differential test's setup and comparison)

mbsync_test = importlib.import_module("watch-mbsync")  # its Dovecot and its settling

GRACE = mbsync_test.GRACE


def offlineimap(setup, rc):
    result = subprocess.run(["offlineimap", "-o", "-u", "quiet", "-c", rc], env=setup.env(setup.config),
                            preexec_fn=watch.as_nobody, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    watch.check(result.returncode == 0, f"offlineimap failed: {result.stdout.decode(errors='replace')}")


def runs_at_all():
    """offlineimap3 starts (Python and its modules are there)."""
    probe = subprocess.run(["offlineimap", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if probe.returncode != 0:
        return probe.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return None


def numbers_by_id(imap, folder):
    imap.select(folder)
    _, data = imap.search(None, "ALL")
    found = {}
    for number in data[0].split():
        _, fetched = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found[fetched[0][1].decode().split("<")[1].split(">")[0]] = number
    return found


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    binary = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        watch.skip("needs root (dovecot; the watcher and offlineimap then run as nobody)")
    for tool, package in (("offlineimap", "offlineimap3"), ("dovecot", "dovecot-core"), ("notmuch", "notmuch")):
        if shutil.which(tool) is None:
            watch.skip(f"{tool} is not installed (make deps-e2e installs {package})")
    if not os.path.exists("/usr/lib/dovecot/imap"):
        watch.skip("dovecot-imapd is not installed (make deps-e2e)")
    if not os.access(binary, os.X_OK):
        watch.skip(f"{binary} is not built (make build)")
    broken = runs_at_all()
    if broken:
        watch.skip(f"offlineimap does not run here: {broken[0]}")
    setup = watch.Setup(binary, "offlineimap")
    conf = None
    watcher = None
    try:
        port = mbsync_test.free_port()
        conf = mbsync_test.start_dovecot(setup.dir, port)
        metadata = os.path.join(setup.dir, "offlineimap-state")
        rc = os.path.join(setup.dir, "offlineimaprc")
        with open(rc, "w") as f:
            f.write(f"""[general]
accounts = remote
metadata = {metadata}
maxsyncaccounts = 1

[Account remote]
localrepository = local
remoterepository = server

[Repository local]
type = Maildir
localfolders = {setup.mail}
sep = /

[Repository server]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = remote
remotepass = secret
ssl = no
starttls = no
maxconnections = 1
""")
        os.chmod(rc, 0o644)
        if watch.DROPS_ROOT:
            os.makedirs(metadata)
            os.chown(metadata, watch.NOBODY, watch.NOBODY)
        imap = imaplib.IMAP4("127.0.0.1", port)
        imap.login("remote", "secret")
        imap.create("Archive")
        for n in range(1, 6):
            subject = f"rule-me {n}" if n % 2 else f"plain {n}"
            flags = "(\\Seen)" if n == 2 else None
            imap.append("INBOX", flags, None, mbsync_test.message(n, subject))
        setup.notmuch(setup.config, "new", "--quiet")
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE)])

        offlineimap(setup, rc)
        state = mbsync_test.settled(setup, "offlineimap's first sync")
        watch.check(len(state) == 5, f"the first sync gave {len(state)} messages, not 5")
        for n in (1, 3, 5):
            watch.check(watch.RULE_TAG in state[f"imap-{n}@imap.example"][0], f"imap-{n} has no rule tag")
        watch.check("unread" not in state["imap-2@imap.example"][0], "imap-2 was \\Seen on the server, and is unread")
        print("ok: offlineimap's first sync: 5 messages, rule tags, \\Seen as no unread")

        setup.notmuch(setup.config, "tag", f"+{watch.USER_TAG}", "--", "id:imap-1@imap.example")
        setup.notmuch(setup.config, "tag", f"+{watch.USER_TAG}", "--", "id:imap-5@imap.example")
        by_id = numbers_by_id(imap, "INBOX")
        imap.copy(by_id["imap-1@imap.example"], "Archive")              # a move: copy, then expunge
        imap.store(by_id["imap-1@imap.example"], "+FLAGS", "(\\Deleted)")
        imap.store(by_id["imap-3@imap.example"], "+FLAGS", "(\\Seen \\Flagged)")
        imap.store(by_id["imap-4@imap.example"], "+FLAGS", "(\\Deleted)")  # expunged for good
        imap.expunge()
        imap.append("Archive", None, None, mbsync_test.message(6, "rule-me 6"))

        offlineimap(setup, rc)
        state = mbsync_test.settled(setup, "the second sync (a move, a flag change, an expunge, an arrival)")
        moved = state.get("imap-1@imap.example")
        watch.check(moved and all(p.startswith("Archive/") for p in moved[1]), f"imap-1 was not moved: {moved}")
        watch.check(watch.USER_TAG in moved[0], "the user's tag on imap-1 did not survive its move")
        watch.check({"flagged"} <= state["imap-3@imap.example"][0] and "unread" not in state["imap-3@imap.example"][0],
                    "imap-3's flags did not become tags")
        watch.check("imap-4@imap.example" not in state, "imap-4 was expunged and is still indexed")
        watch.check(watch.RULE_TAG in state["imap-6@imap.example"][0], "imap-6 has no rule tag")
        print("ok: offlineimap's second sync: the move kept the user's tag, flags became tags, the expunge removed, "
              "the arrival got the rule")

        # Both ways: offlineimap syncs one folder, then the other, so one
        # of these moves is a download then an expunge, the other an
        # expunge then a download (within the grace period).
        setup.notmuch(setup.config, "tag", f"+{watch.USER_TAG}", "--", "id:imap-6@imap.example")
        by_id = numbers_by_id(imap, "Archive")
        imap.store(by_id["imap-1@imap.example"], "-FLAGS", "(\\Seen)")
        by_id = numbers_by_id(imap, "INBOX")
        imap.copy(by_id["imap-5@imap.example"], "Archive")
        imap.store(by_id["imap-5@imap.example"], "+FLAGS", "(\\Deleted)")
        imap.expunge()
        by_id = numbers_by_id(imap, "Archive")
        imap.copy(by_id["imap-6@imap.example"], "INBOX")
        imap.store(by_id["imap-6@imap.example"], "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.logout()

        offlineimap(setup, rc)
        state = mbsync_test.settled(setup, "the third sync (moves both ways, a flag removed)")
        moved = state.get("imap-5@imap.example")
        watch.check(moved and all(p.startswith("Archive/") for p in moved[1]), f"imap-5 was not moved: {moved}")
        watch.check(watch.USER_TAG in moved[0], "the user's tag on imap-5 did not survive its move")
        back = state.get("imap-6@imap.example")
        watch.check(back and all(p.startswith("INBOX/") for p in back[1]), f"imap-6 was not moved back: {back}")
        watch.check(watch.RULE_TAG in back[0] and watch.USER_TAG in back[0],
                    f"imap-6 lost its tags in its move: {sorted(back[0])}")
        print("ok: offlineimap's third sync: moves both ways kept the user's and the rule's tags")

        watcher.send_signal(signal.SIGTERM)
        watch.check(watcher.wait(timeout=30) == 0, "the watcher did not exit 0 on SIGTERM")
        report = setup.notmuch(setup.config, "new").strip()
        watch.check(report.endswith("No new mail.") and not any(w in report for w in ("Added", "Removed", "Detected")),
                    f"notmuch new after the watcher did something: {report!r}")
        print("watch-offlineimap: 1 passed, 0 failed")
    except watch.Failure as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    finally:
        if watcher and watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        if conf:
            subprocess.run(["doveadm", "-c", conf, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.environ.get("KEEP_WATCH_TEST"):
            print(f"kept {setup.dir}")
        else:
            shutil.rmtree(setup.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
