#!/usr/bin/env bash
# Our Sieve interpreter against Pigeonhole's, the reference: every script
# of sieve/scripts/ on every message of sieve/messages/ through
# `sieve-test` (which prints the actions it would take and stores
# nothing) and through `notmuch-deliver check-rules --sieve-actions`, both
# reduced to one line per store: `store MAILBOX FLAGS…` (flags in lower
# case, sorted; INBOX for the default mailbox), or `discard` when nothing
# is stored. Every pair must agree. A message's envelope is in NAME.envelope
# (sender, then recipient), else sender@example.net to bob@example.org.
# Needs root to install dovecot-sieve and to run sieve-test as nobody (it
# refuses root). Exit status 77: skipped.
set -euo pipefail
bin=$(realpath "${1:?usage: sieve.sh PATH/TO/notmuch-deliver}")
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then echo "SKIPPED: Sieve differential test against Pigeonhole (needs root to run sieve-test as nobody)"; exit 77; fi
if ! command -v sieve-test >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-core dovecot-sieve >/dev/null 2>&1 || true
fi
command -v sieve-test >/dev/null || { echo "SKIPPED: Sieve differential test (dovecot-sieve cannot be installed)"; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/sieve/scripts" "$here/sieve/messages" "$work/"
# sieve-test runs as nobody and writes its compiled .svbin beside the script.
chown -R nobody "$work"
chmod -R a+rX "$work"

python3 - "$bin" "$work" <<'PY'
import os, subprocess, sys
bin, work = sys.argv[1], sys.argv[2]
scripts = sorted(f for f in os.listdir(work + "/scripts") if f.endswith(".sieve"))
messages = sorted(f for f in os.listdir(work + "/messages") if f.endswith(".eml"))

def envelope(message):
    path = work + "/messages/" + message[:-4] + ".envelope"
    if os.path.exists(path):
        sender, recipient = open(path).read().split("\n")[:2]
        return sender, recipient
    return "sender@example.net", "bob@example.org"

def normalised(stores):
    if not stores:
        return ["discard"]
    lines = []
    for mailbox, flags in stores:
        if mailbox.lower() == "inbox":
            mailbox = "INBOX"
        lines.append(" ".join(["store", mailbox] + sorted(set(f.lower() for f in flags))))
    return sorted(set(lines))

def pigeonhole(script, message):
    sender, recipient = envelope(message)
    run = subprocess.run(["runuser", "-u", "nobody", "--", "sieve-test", "-f", sender, "-r", recipient,
                          work + "/scripts/" + script, work + "/messages/" + message],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return ["error: " + run.stderr.strip().replace("\n", " | ")]
    stores = []
    for line in run.stdout.splitlines():
        text = line.strip()
        if text.startswith("* store message in folder: "):
            stores.append((text[len("* store message in folder: "):], []))
        elif text.startswith("+ add IMAP flags: ") and stores:
            stores[-1][1].extend(text[len("+ add IMAP flags: "):].split())
    return normalised(stores)

def ours(script, message):
    sender, recipient = envelope(message)
    run = subprocess.run([bin, "check-rules", "--sieve-actions", work + "/messages/" + message,
                          "--sender", sender, "--recipient", recipient, work + "/scripts/" + script],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return ["error: " + run.stderr.strip().replace("\n", " | ")]
    # Already in the normalised form (and a mailbox name may hold spaces).
    return sorted(run.stdout.splitlines())

pairs = agreements = 0
for script in scripts:
    for message in messages:
        pairs += 1
        theirs, mine = pigeonhole(script, message), ours(script, message)
        if theirs == mine:
            agreements += 1
        else:
            print("DIFFERENT: %s on %s\n  pigeonhole: %s\n  ours:       %s" % (script, message, theirs, mine))
print("Sieve against Pigeonhole: %d of %d script x message pairs agree" % (agreements, pairs))
sys.exit(0 if agreements == pairs else 1)
PY
