#!/usr/bin/env bash
# End to end with Debian's postfix, on loopback only:
#  - mailbox_command: a local user with a notmuch config, database and rules;
#    mail sent over SMTP is indexed with the right tags, without a From_
#    line; the +extension reaches the rules; an unwritable maildir defers
#    (not bounces) and the mail arrives, once, after the fix;
#  - pipe(8) virtual mailboxes run as an unprivileged vmail user, one
#    notmuch database per address, created on first delivery.
# Needs root (useradd, postfix) and `make deps-e2e`. Stops the postfix it starts.
# Exit status 77 (automake's "skipped"): it could not run here, which is not a pass.
set -euo pipefail
deliver_built=${1:?usage: postfix.sh PATH/TO/notmuch-deliver}
if [ "$(id -u)" != 0 ]; then echo "SKIPPED: postfix end-to-end test (needs root: useradd, postfix)"; exit 77; fi

fail() { echo "FAIL: $*"; postfix stop >/dev/null 2>&1 || true; exit 1; }
pass() { echo "ok: $*"; }

command -v postconf >/dev/null || fail "postfix is not installed: run make deps-e2e"

# The binary where both test users can run it.
install -d -m 0755 /usr/local/libexec/notmuch-deliver-test
install -m 0755 "$deliver_built" /usr/local/libexec/notmuch-deliver-test/notmuch-deliver
bin=/usr/local/libexec/notmuch-deliver-test/notmuch-deliver

# A local user with notmuch set up as a notmuch user would.
. "$(dirname "$0")/notmuch-user.sh"

# Virtual mailboxes owned by vmail.
id vmail >/dev/null 2>&1 || useradd -r -s /usr/sbin/nologin -d /srv/vmail vmail
rm -rf /srv/vmail && install -d -o vmail -g vmail -m 0700 /srv/vmail

postfix stop >/dev/null 2>&1 || true
postsuper -d ALL >/dev/null 2>&1 || true   # no mail left queued by an earlier run
postconf -e "inet_interfaces = loopback-only" "inet_protocols = ipv4" "myhostname = mx.test.example" \
  "mydestination = test.example, localhost" "mynetworks = 127.0.0.0/8" "recipient_delimiter = +" \
  "mailbox_command = $bin" "mailbox_transport =" "transport_maps =" \
  "virtual_mailbox_domains = virt.example" "virtual_transport = notmuchd" \
  "notmuchd_destination_recipient_limit = 1" "smtputf8_enable = no" "maillog_file = /var/log/postfix-test.log" \
  "compatibility_level = 3.6" "alias_maps = hash:/etc/aliases" "alias_database = hash:/etc/aliases"
postconf -M -e "notmuchd/unix=notmuchd unix - n n - - pipe flags=DRhu user=vmail argv=$bin --mail-root /srv/vmail/%d/%u --recipient \${recipient}"
postconf -M -e "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
newaliases
: > /var/log/postfix-test.log   # this run's log only: earlier runs' bounces are not ours
postfix start >/dev/null 2>&1
trap 'postfix stop >/dev/null 2>&1 || true' EXIT

send() { # send FROM TO MESSAGE-ID SUBJECT
  python3 - "$@" <<'PY'
import smtplib, sys
sender, rcpt, msgid, subject = sys.argv[1:5]
body = f"From: Sender <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n\r\nHello.\r\n"
with smtplib.SMTP("127.0.0.1", 25, timeout=30) as smtp:
    smtp.sendmail(sender, [rcpt], body)
PY
}
as_user() { su ndtest -c "$*"; }
wait_for() { # wait_for COMMAND EXPECTED
  for _ in $(seq 1 60); do
    [ "$(eval "$1" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.5
  done
  echo "last: $(eval "$1" 2>&1)"; tail -20 /var/log/postfix-test.log; return 1
}

# 1. mailbox_command
send sender@remote.example ndtest@test.example plain@remote.example "plain"
wait_for "as_user notmuch count id:plain@remote.example" 1 || fail "plain message not indexed"
tags=$(as_user notmuch search --output=tags id:plain@remote.example | tr '\n' ' ')
[ "$tags" = "fromtest inbox unread " ] || fail "plain message tags: $tags"
file=$(as_user notmuch search --output=files id:plain@remote.example)
head -1 "$file" | grep -q '^From ' && fail "the stored file starts with a From_ line"
grep -q '^Return-Path: <sender@remote.example>' "$file" || fail "no Return-Path from postfix"
grep -q '^Delivered-To: ndtest@test.example' "$file" || fail "no Delivered-To from postfix"
pass "mailbox_command: indexed, tagged, no From_ line, sender kept in Return-Path"

send sender@remote.example ndtest+shop@test.example shop@remote.example "order"
wait_for "as_user notmuch count id:shop@remote.example and folder:shop and tag:shopping" 1 \
  || fail "+extension did not reach the rules"
pass "mailbox_command: +shop extension reached the rules (folder shop, tag shopping)"

[ "$(as_user notmuch new)" = "No new mail." ] || fail "notmuch new found something after deliveries"
pass "notmuch new finds nothing new"

# 2. an unwritable maildir defers, and the mail arrives once fixed
chmod 0500 "$home/mail/tmp"
send sender@remote.example ndtest@test.example deferred@remote.example "deferred"
wait_for "grep -c 'deferred@remote.example\|status=deferred' /var/log/postfix-test.log | tr -d ' ' | sed 's/^[1-9][0-9]*$/seen/'" seen \
  || fail "no deferral logged"
sleep 1
grep -q 'status=bounced' /var/log/postfix-test.log && fail "postfix bounced instead of deferring"
[ "$(as_user notmuch count id:deferred@remote.example)" = 0 ] || fail "delivered despite the unwritable maildir"
pass "unwritable maildir: postfix deferred (exit 75), no bounce"
chmod 0700 "$home/mail/tmp"
postqueue -f
wait_for "as_user notmuch count id:deferred@remote.example" 1 || fail "deferred mail did not arrive after the fix"
[ "$(as_user notmuch count --output=files id:deferred@remote.example)" = 1 ] || fail "deferred mail stored twice"
pass "after the fix the deferred mail arrived, once"

# 3. virtual mailboxes through pipe(8), as vmail
send sender@remote.example alice@virt.example va@remote.example "to alice"
send sender@remote.example bob@virt.example vb@remote.example "to bob"
send sender@remote.example alice@virt.example va2@remote.example "to alice again"
view() { # view MAILBOX notmuch-args...
  local box=$1; shift
  printf '[database]\npath=%s\n' "$box" > /tmp/nd-view.conf
  NOTMUCH_CONFIG=/tmp/nd-view.conf notmuch "$@"
}
wait_for "view /srv/vmail/virt.example/alice count '*'" 2 || fail "alice's virtual mailbox"
wait_for "view /srv/vmail/virt.example/bob count '*'" 1 || fail "bob's virtual mailbox"
[ "$(stat -c %U /srv/vmail/virt.example/bob/.notmuch/xapian)" = vmail ] || fail "database not owned by vmail"
[ "$(view /srv/vmail/virt.example/bob count id:va@remote.example)" = 0 ] || fail "alice's mail in bob's mailbox"
pass "virtual mailboxes: one database per address, created by vmail on first delivery"

echo "postfix end-to-end: all passed"
