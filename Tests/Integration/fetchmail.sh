#!/usr/bin/env bash
# End to end with fetchmail: a POP3 server (Debian's dovecot-pop3d, on
# loopback, one passwd-file user) holds a few messages; fetchmail's mda is
# notmuch-deliver; they must be indexed with the mda's tag, and a message
# whose delivery tempfails (exit 75) must stay on the server until it works.
# Then the same with fetchmail's lmtp option, handing the mail to the user's
# `notmuch-deliver lmtp` server on a unix socket (a 451 keeps it on the server).
# Needs root (useradd, dovecot) and `make deps-e2e`. Stops the dovecot it starts.
# Exit status 77 (automake's "skipped"): it could not run here, which is not a pass.
set -euo pipefail
deliver_built=${1:?usage: fetchmail.sh PATH/TO/notmuch-deliver}
if [ "$(id -u)" != 0 ]; then echo "SKIPPED: fetchmail end-to-end test (needs root: useradd, dovecot)"; exit 77; fi
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

command -v fetchmail >/dev/null && command -v dovecot >/dev/null || fail "fetchmail or dovecot missing: run make deps-e2e"

install -d -m 0755 /usr/local/libexec/notmuch-deliver-test
install -m 0755 "$deliver_built" /usr/local/libexec/notmuch-deliver-test/notmuch-deliver
bin=/usr/local/libexec/notmuch-deliver-test/notmuch-deliver

id ndfetch >/dev/null 2>&1 || useradd -m -s /bin/sh ndfetch
home=/home/ndfetch
work=$(mktemp -d /tmp/nd-fetch.XXXXXX)
chmod 0755 "$work"
lmtp_pid=""
trap 'kill $(cat "$work/run/master.pid" 2>/dev/null) $lmtp_pid 2>/dev/null || true; rm -rf "$work"' EXIT

# The POP3 side: a maildir of three messages for user "remote".
spool="$work/spool"
mkdir -p "$spool"/{tmp,new,cur}
for n in 1 2 3; do
  printf 'From: Remote <r@pop.example>\nTo: ndfetch@example.org\nSubject: fetched %s\nMessage-ID: <fetched-%s@pop.example>\n\nbody %s\n' \
    "$n" "$n" "$n" > "$spool/new/100$n.pop"
done
chown -R ndfetch "$spool"
mkdir -p "$work/run"
echo "remote:{PLAIN}secret:$(id -u ndfetch):$(id -g ndfetch)::$work::userdb_mail=maildir:$spool" > "$work/passwd"
cat > "$work/dovecot.conf" <<CONF
protocols = pop3
listen = 127.0.0.1
base_dir = $work/run
state_dir = $work/run
log_path = $work/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = $work/passwd
}
userdb {
  driver = passwd-file
  args = $work/passwd
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = 11110
  }
}
service anvil {
  chroot =
}
service pop3-login {
  chroot =
}
default_internal_user = dovecot
default_login_user = dovenull
CONF
dovecot -c "$work/dovecot.conf" || { cat "$work/dovecot.log" 2>/dev/null; fail "dovecot did not start"; }
sleep 1

# The notmuch side, as the user would have it.
rm -rf "$home/mail" "$home/.notmuch-config"
su ndfetch -c "mkdir -p $home/mail && printf '[database]\npath=$home/mail\n[new]\ntags=unread;inbox;\n' > $home/.notmuch-config && notmuch new --quiet"
cat > "$work/fetchmailrc" <<RC
set no syslog
poll 127.0.0.1 service 11110 protocol pop3 auth password:
  user "remote" password "secret" is ndfetch here
  mda "$bin --tag fetched"
  no keep
RC
chown ndfetch "$work/fetchmailrc"; chmod 0600 "$work/fetchmailrc"
su ndfetch -c "fetchmail -f $work/fetchmailrc --nosslcertck -v" > "$work/fetchmail.log" 2>&1 || true

count() { su ndfetch -c "notmuch count '$1'"; }
[ "$(count 'tag:fetched and from:pop.example')" = 3 ] || { cat "$work/fetchmail.log"; fail "fetched messages not indexed"; }
pass "fetchmail mda: 3 messages indexed with tag fetched"
left=$(ls "$spool/new" "$spool/cur" | grep -c pop || true)
[ "$left" = 0 ] || { cat "$work/fetchmail.log"; fail "delivered messages left on the server: $left"; }
pass "delivered messages were removed from the server"

# A temporary failure keeps mail on the server too: make the maildir unwritable.
printf 'From: Remote <r@pop.example>\nSubject: later\nMessage-ID: <later@pop.example>\n\nbody\n' > "$spool/new/1010.pop"
chown ndfetch "$spool/new/1010.pop"
chmod 0500 "$home/mail/tmp"
su ndfetch -c "fetchmail -f $work/fetchmailrc --nosslcertck" > "$work/fetchmail2.log" 2>&1 || true
ls "$spool/new" "$spool/cur" | grep -q 1010 || fail "a tempfailed message was removed from the server"
chmod 0700 "$home/mail/tmp"
su ndfetch -c "fetchmail -f $work/fetchmailrc --nosslcertck" > "$work/fetchmail3.log" 2>&1 || true
[ "$(count 'id:later@pop.example')" = 1 ] || { cat "$work/fetchmail3.log"; fail "the message did not arrive after the fix"; }
pass "a tempfailed message stayed on the server and arrived on the next run"

# fetchmail's lmtp option, against the user's LMTP server.
install -d -o ndfetch -m 0700 "$work/lmtp"
setpriv --reuid=ndfetch --regid=ndfetch --init-groups env HOME="$home" \
  "$bin" lmtp --listen "unix:$work/lmtp/socket" --log "$work/lmtp/log" 2>"$work/lmtp.err" &
lmtp_pid=$!
for _ in $(seq 1 50); do [ -S "$work/lmtp/socket" ] && break; sleep 0.1; done
[ -S "$work/lmtp/socket" ] || fail "the LMTP server did not start: $(cat "$work/lmtp.err")"
cat > "$work/fetchmailrc-lmtp" <<RC
set no syslog
poll 127.0.0.1 service 11110 protocol pop3 auth password:
  user "remote" password "secret" is ndfetch here
  smtphost "$work/lmtp/socket"
  lmtp
  no keep
RC
chown ndfetch "$work/fetchmailrc-lmtp"; chmod 0600 "$work/fetchmailrc-lmtp"
for n in 1 2; do
  printf 'From: Remote <r@pop.example>\nTo: ndfetch@example.org\nSubject: over lmtp %s\nMessage-ID: <lmtp-%s@pop.example>\n\nbody\n' \
    "$n" "$n" > "$spool/new/102$n.pop"
done
chown ndfetch "$spool"/new/102?.pop
su ndfetch -c "fetchmail -f $work/fetchmailrc-lmtp --nosslcertck -v" > "$work/fetchmail4.log" 2>&1 || true
[ "$(count 'id:lmtp-1@pop.example or id:lmtp-2@pop.example')" = 2 ] || { cat "$work/fetchmail4.log"; fail "messages fetched over LMTP not indexed"; }
grep -q 'session=.* delivered id=<lmtp-1@pop.example>' "$work/lmtp/log" || fail "the LMTP server did not log the delivery"
! ls "$spool/new" "$spool/cur" | grep -q '102[12]' || fail "messages delivered over LMTP left on the server"
pass "fetchmail lmtp: 2 messages delivered through the LMTP server, removed from the POP server"

printf 'From: Remote <r@pop.example>\nSubject: lmtp later\nMessage-ID: <lmtp-later@pop.example>\n\nbody\n' > "$spool/new/1030.pop"
chown ndfetch "$spool/new/1030.pop"
chmod 0500 "$home/mail/new"
su ndfetch -c "fetchmail -f $work/fetchmailrc-lmtp --nosslcertck -v" > "$work/fetchmail5.log" 2>&1 || true
chmod 0700 "$home/mail/new"
grep -q '451 4' "$work/fetchmail5.log" || { cat "$work/fetchmail5.log"; fail "fetchmail was not told 451"; }
ls "$spool/new" "$spool/cur" | grep -q 1030 || fail "a message the LMTP server deferred was removed from the POP server"
su ndfetch -c "fetchmail -f $work/fetchmailrc-lmtp --nosslcertck" > "$work/fetchmail6.log" 2>&1 || true
[ "$(count 'id:lmtp-later@pop.example')" = 1 ] || { cat "$work/fetchmail6.log"; fail "the deferred message did not arrive after the fix"; }
pass "fetchmail lmtp: a 451 (unwritable maildir) kept the message on the server; it arrived on the next run"
kill -TERM "$lmtp_pid"; status=0; wait "$lmtp_pid" || status=$?; lmtp_pid=""
[ "$status" = 0 ] || fail "the LMTP server exited $status after SIGTERM"
echo "fetchmail end-to-end: all passed"
