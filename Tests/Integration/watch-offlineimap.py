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
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watch  # noqa: E402  (the differential test's setup and comparison)

mbsync_test = importlib.import_module("watch-mbsync")  # its Dovecot, its first two syncs, its checks


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


def write_offlineimaprc(setup, port):
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
    return rc


def moves_both_ways(setup, imap, sync):
    """offlineimap syncs one folder, then the other, so one of these moves
    is a download then an expunge, the other an expunge then a download
    (within the grace period)."""
    setup.notmuch(setup.config, "tag", f"+{watch.USER_TAG}", "--", "id:imap-5@imap.example")
    setup.notmuch(setup.config, "tag", f"+{watch.USER_TAG}", "--", "id:imap-6@imap.example")
    imap.store(mbsync_test.numbers_by_id(imap, "Archive")["imap-1@imap.example"], "-FLAGS", "(\\Seen)")
    mbsync_test.move_on_server(imap, mbsync_test.numbers_by_id(imap, "INBOX")["imap-5@imap.example"], "Archive")
    mbsync_test.move_on_server(imap, mbsync_test.numbers_by_id(imap, "Archive")["imap-6@imap.example"], "INBOX")

    sync()
    state = mbsync_test.settled(setup, "the third sync (moves both ways, a flag removed)")
    moved = state.get("imap-5@imap.example")
    watch.check(moved and all(p.startswith("Archive/") for p in moved[1]), f"imap-5 was not moved: {moved}")
    watch.check(watch.USER_TAG in moved[0], "the user's tag on imap-5 did not survive its move")
    back = state.get("imap-6@imap.example")
    watch.check(back and all(p.startswith("INBOX/") for p in back[1]), f"imap-6 was not moved back: {back}")
    watch.check(watch.RULE_TAG in back[0] and watch.USER_TAG in back[0],
                f"imap-6 lost its tags in its move: {sorted(back[0])}")
    print("ok: offlineimap's third sync: moves both ways kept the user's and the rule's tags")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    binary = os.path.abspath(sys.argv[1])
    mbsync_test.skip_unless_ready(binary, "offlineimap", "offlineimap3")
    broken = runs_at_all()
    if broken:
        watch.skip(f"offlineimap does not run here: {broken[0]}")
    setup = watch.Setup(binary, "offlineimap")
    mbsync_test.run_against_dovecot(setup, "offlineimap", lambda port: write_offlineimaprc(setup, port),
                                    lambda rc: offlineimap(setup, rc), moves_both_ways)


if __name__ == "__main__":
    main()
