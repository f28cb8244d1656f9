#!/usr/bin/env python3
"""`notmuch-deliver watch` with a real sync tool: Debian's isync (mbsync)
syncing from a local Dovecot IMAP server (dovecot-imapd, on loopback) into
the watched maildir. Mail is appended over IMAP, flagged, moved between
folders and expunged on the server; after each sync the watcher's
database must be what a fresh `notmuch new` makes of the tree, the rule's
tag must be on the new mail it matches, and a tag the user set must
survive its message's move to another folder.

    python3 Tests/Integration/watch-mbsync.py PATH/TO/notmuch-deliver

Exit status: 0 passed, 1 failed, 77 it cannot run here (the reason after
"SKIPPED:"): it needs root (dovecot, and the watcher then runs as nobody)
and the packages isync and dovecot-imapd (`make deps-e2e`).
"""

import imaplib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watch  # noqa: E402  (the differential test's setup and comparison)

NOBODY = watch.NOBODY
GRACE = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dovecot(work, port):
    server = os.path.join(work, "server")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(server, sub))
    run = os.path.join(work, "run")
    os.mkdir(run)
    with open(os.path.join(work, "passwd"), "w") as f:
        f.write(f"remote:{{PLAIN}}secret:{NOBODY}:{NOBODY}::{work}::userdb_mail=maildir:{server}\n")
    conf = os.path.join(work, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {run}
state_dir = {run}
log_path = {work}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {work}/passwd
}}
userdb {{
  driver = passwd-file
  args = {work}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
default_internal_user = dovecot
default_login_user = dovenull
""")
    for top, dirs, files in os.walk(server):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            os.chown(name, NOBODY, NOBODY)
    # Not a pipe: the daemon would keep it open, and run() wait for ever.
    with open(os.path.join(work, "dovecot.stderr"), "wb") as errors:
        result = subprocess.run(["dovecot", "-c", conf], stdout=subprocess.DEVNULL, stderr=errors)
    with open(os.path.join(work, "dovecot.stderr"), "rb") as errors:
        watch.check(result.returncode == 0, f"dovecot did not start: {errors.read().decode(errors='replace')}")
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return conf
        except OSError:
            time.sleep(0.1)
    raise watch.Failure("dovecot does not listen")


def message(n, subject):
    return (f"From: Remote <r{n}@imap.example>\r\nTo: me@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <imap-{n}@imap.example>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nbody {n}\r\n").encode()


def mbsync(setup, rc):
    result = subprocess.run(["mbsync", "-c", rc, "-a"], env=setup.env(setup.config), preexec_fn=watch.as_nobody,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    watch.check(result.returncode == 0, f"mbsync failed: {result.stdout.decode(errors='replace')}")


def settled(setup, what):
    """Waits out the grace period, then the watcher's database must be
    notmuch new's view of the tree."""
    fresh = watch.without(watch.fresh_view(setup), {watch.RULE_TAG, watch.USER_TAG})
    deadline = time.time() + GRACE + 15
    while True:
        time.sleep(1)
        full = setup.state(setup.config, setup.mail)
        diff = watch.differences(watch.without(full, {watch.RULE_TAG, watch.USER_TAG}), fresh)
        if not diff or time.time() > deadline:
            break
    watch.check(not diff, f"after {what}, the watcher's database differs from notmuch new's view:\n" + "\n".join(diff))
    return full


def skip_unless_ready(binary, tool, package):
    """Skips (exit 77) unless this can run here: root, the sync tool,
    Dovecot with its IMAP server, notmuch and the built binary."""
    if os.geteuid() != 0:
        watch.skip(f"needs root (dovecot; the watcher and {tool} then run as nobody)")
    for program, needed in ((tool, package), ("dovecot", "dovecot-core"), ("notmuch", "notmuch")):
        if shutil.which(program) is None:
            watch.skip(f"{program} is not installed (make deps-e2e installs {needed})")
    if not os.path.exists("/usr/lib/dovecot/imap"):
        watch.skip("dovecot-imapd is not installed (make deps-e2e)")
    if not os.access(binary, os.X_OK):
        watch.skip(f"{binary} is not built (make build)")


def numbers_by_id(imap, folder):
    """The server's message numbers in folder, by Message-ID."""
    imap.select(folder)
    _, data = imap.search(None, "ALL")
    found = {}
    for number in data[0].split():
        _, fetched = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found[fetched[0][1].decode().split("<")[1].split(">")[0]] = number
    return found


def move_on_server(imap, number, folder):
    """An IMAP move as the sync tools see it: a copy, then an expunge."""
    imap.copy(number, folder)
    imap.store(number, "+FLAGS", "(\\Deleted)")
    imap.expunge()


def seeded_server(port):
    """A logged-in IMAP session on a server with an Archive folder and five
    messages in INBOX: the odd ones match the rule, imap-2 is \\Seen."""
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login("remote", "secret")
    imap.create("Archive")
    for n in range(1, 6):
        subject = f"rule-me {n}" if n % 2 else f"plain {n}"
        flags = "(\\Seen)" if n == 2 else None
        imap.append("INBOX", flags, None, message(n, subject))
    return imap


def first_and_second_sync(setup, imap, sync, tool):
    """The first sync (five new messages) and the second (a move, a flag
    change, an expunge and an arrival), each checked against notmuch new's
    view of the tree."""
    sync()
    state = settled(setup, f"{tool}'s first sync")
    watch.check(len(state) == 5, f"the first sync gave {len(state)} messages, not 5")
    for n in (1, 3, 5):
        watch.check(watch.RULE_TAG in state[f"imap-{n}@imap.example"][0], f"imap-{n} has no rule tag")
    watch.check("unread" not in state["imap-2@imap.example"][0], "imap-2 was \\Seen on the server, and is unread")
    print(f"ok: {tool}'s first sync: 5 messages, rule tags, \\Seen as no unread")

    setup.notmuch(setup.config, "tag", f"+{watch.USER_TAG}", "--", "id:imap-1@imap.example")
    by_id = numbers_by_id(imap, "INBOX")
    imap.store(by_id["imap-3@imap.example"], "+FLAGS", "(\\Seen \\Flagged)")
    imap.store(by_id["imap-4@imap.example"], "+FLAGS", "(\\Deleted)")  # expunged for good
    move_on_server(imap, by_id["imap-1@imap.example"], "Archive")
    imap.append("Archive", None, None, message(6, "rule-me 6"))

    sync()
    state = settled(setup, "the second sync (a move, a flag change, an expunge, an arrival)")
    moved = state.get("imap-1@imap.example")
    watch.check(moved and all(p.startswith("Archive/") for p in moved[1]), f"imap-1 was not moved: {moved}")
    watch.check(watch.USER_TAG in moved[0], "the user's tag on imap-1 did not survive its move")
    watch.check({"flagged"} <= state["imap-3@imap.example"][0] and "unread" not in state["imap-3@imap.example"][0],
                "imap-3's flags did not become tags")
    watch.check("imap-4@imap.example" not in state, "imap-4 was expunged and is still indexed")
    watch.check(watch.RULE_TAG in state["imap-6@imap.example"][0], "imap-6 has no rule tag")
    print(f"ok: {tool}'s second sync: the move kept the user's tag, flags became tags, the expunge removed, "
          "the arrival got the rule")


def run_against_dovecot(setup, tool, write_rc, sync, more_syncs=None):
    """The whole run with a sync tool: Dovecot on loopback, a seeded
    server, the watcher, two syncs (and more_syncs(setup, imap, sync_now)
    if given), then SIGTERM and a last `notmuch new` that must find
    nothing to do. write_rc(port) writes the tool's configuration and
    returns its path; sync(rc) runs the tool once. Exits 1 on a failed
    check and always stops Dovecot and removes the scratch tree."""
    conf = None
    watcher = None
    try:
        port = free_port()
        conf = start_dovecot(setup.dir, port)
        rc = write_rc(port)
        imap = seeded_server(port)
        setup.notmuch(setup.config, "new", "--quiet")
        watcher, log = watch.start_watcher_with(setup, ["--grace", str(GRACE)])

        first_and_second_sync(setup, imap, lambda: sync(rc), tool)
        if more_syncs:
            more_syncs(setup, imap, lambda: sync(rc))
        imap.logout()

        watcher.send_signal(signal.SIGTERM)
        watch.check(watcher.wait(timeout=30) == 0, "the watcher did not exit 0 on SIGTERM")
        report = setup.notmuch(setup.config, "new").strip()
        watch.check(report.endswith("No new mail.") and not any(w in report for w in ("Added", "Removed", "Detected")),
                    f"notmuch new after the watcher did something: {report!r}")
        print(f"watch-{tool}: 1 passed, 0 failed")
    except watch.Failure as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    finally:
        if watcher and watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        if conf:
            subprocess.run(["doveadm", "-c", conf, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watch.remove_unless_kept(setup)


def write_mbsyncrc(setup, port):
    rc = os.path.join(setup.dir, "mbsyncrc")
    with open(rc, "w") as f:
        f.write(f"""IMAPAccount remote
Host 127.0.0.1
Port {port}
User remote
Pass secret
SSLType None
AuthMechs LOGIN

IMAPStore remote-store
Account remote

MaildirStore local
Path {setup.mail}/
Inbox {setup.mail}/INBOX
SubFolders Verbatim

Channel all
Far :remote-store:
Near :local:
Patterns *
Create Near
Expunge Both
SyncState *
""")
    os.chmod(rc, 0o644)
    return rc


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    binary = os.path.abspath(sys.argv[1])
    skip_unless_ready(binary, "mbsync", "isync")
    setup = watch.Setup(binary, "mbsync")
    with open(setup.config, "a") as f:
        f.write("[new]\nignore=.mbsyncstate;.mbsyncstate.journal;.mbsyncstate.new;.mbsyncstate.lock;.uidvalidity\n")
    run_against_dovecot(setup, "mbsync", lambda port: write_mbsyncrc(setup, port), lambda rc: mbsync(setup, rc))


if __name__ == "__main__":
    main()
