#!/usr/bin/env bash
# End to end with Debian's postfix delivering over LMTP to `notmuch-deliver
# lmtp`, on loopback only, as Docs/setup-lmtp.md sets it up:
#  - the systemd units in Docs/systemd/ pass `systemd-analyze verify` (when
#    it is installed), and each server gets its socket as those units give
#    it: created by root in postfix's private/ with the units' SocketUser,
#    SocketGroup and SocketMode, and handed over by socket activation
#    (LISTEN_FDS/LISTEN_PID) to the server running as the mailbox owner;
#  - mailbox_transport = lmtp:unix:private/notmuch-deliver-ndtest for a local
#    user: mail sent over SMTP is indexed with the rules' tags (+extension
#    included); an unwritable maildir defers (no bounce) and the mail arrives,
#    once, after the fix and `postqueue -f`; `notmuch new` finds nothing new;
#  - virtual_transport = lmtp:unix:private/notmuch-deliver-vmail, run as
#    vmail: one database per address, created on first delivery; a message
#    for three addresses, one of them unwritable, is delivered to two and
#    deferred for the third, which gets it after the fix;
#  - transport_maps sending a.example to that instance and b.example to a
#    second one (on 127.0.0.1, with its own mail root): each domain's mail
#    lands only in its own instance's mail root;
#  - every server stops on SIGTERM with exit status 0.
# Needs root (useradd, postfix) and `make deps-e2e`. Stops what it starts and
# puts postfix's main.cf and master.cf back as they were.
# Exit status 77 (automake's "skipped"): it could not run here, which is not a pass.
set -euo pipefail
deliver_built=${1:?usage: postfix-lmtp.sh PATH/TO/notmuch-deliver}
if [ "$(id -u)" != 0 ]; then echo "SKIPPED: postfix LMTP end-to-end test (needs root: useradd, postfix)"; exit 77; fi
here=$(cd "$(dirname "$0")/../.." && pwd)
units=$here/Docs/systemd

servers=()
scratch=$(mktemp -d /tmp/nd-postfix-lmtp.XXXXXX)
chmod 0711 "$scratch"   # the servers write their logs here, the users read a config
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  postfix stop >/dev/null 2>&1 || true
  if [ -f "$scratch/main.cf" ]; then
    cp -p "$scratch/main.cf" "$scratch/master.cf" /etc/postfix/
  fi
  rm -f /etc/postfix/nd-lmtp-transport /etc/postfix/nd-lmtp-transport.db
  rm -f /var/spool/postfix/private/notmuch-deliver-ndtest /var/spool/postfix/private/notmuch-deliver-vmail
  rm -f /run/notmuch-deliver-lmtp/ndtest /run/notmuch-deliver-lmtp/vmail
  rmdir /run/notmuch-deliver-lmtp 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

command -v postconf >/dev/null || fail "postfix is not installed: run make deps-e2e"
command -v setpriv >/dev/null || fail "setpriv (util-linux) is missing"

# The binary where the test users can run it.
install -d -m 0755 /usr/local/libexec/notmuch-deliver-test
install -m 0755 "$deliver_built" /usr/local/libexec/notmuch-deliver-test/notmuch-deliver
bin=/usr/local/libexec/notmuch-deliver-test/notmuch-deliver

# 0. The units, as `make install` installs them (with this binary).
if command -v systemd-analyze >/dev/null; then
  mkdir "$scratch/units"
  cp "$units/notmuch-deliver-lmtp@.socket" "$units/notmuch-deliver-lmtp@.service" "$scratch/units/"
  sed -i "s|/usr/local/bin/notmuch-deliver|$bin|" "$scratch/units/notmuch-deliver-lmtp@.service"
  grep -q "^ExecStart=$bin lmtp" "$scratch/units/notmuch-deliver-lmtp@.service" || fail "the service's ExecStart is not /usr/local/bin/notmuch-deliver lmtp"
  for user in ndtest vmail; do
    ln -s notmuch-deliver-lmtp@.socket "$scratch/units/notmuch-deliver-lmtp@$user.socket"
    ln -s notmuch-deliver-lmtp@.service "$scratch/units/notmuch-deliver-lmtp@$user.service"
    out=$(systemd-analyze verify --man=no "$scratch/units/notmuch-deliver-lmtp@$user.socket" \
          "$scratch/units/notmuch-deliver-lmtp@$user.service" 2>&1) || fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify complains: $out"
  done
  pass "systemd units: systemd-analyze verify finds nothing to say (instances ndtest and vmail)"
else
  echo "not checked: the systemd units (systemd-analyze is not installed)"
fi

# The socket as the units make it.
unit_value() { sed -n "s/^$1=//p" "$units/notmuch-deliver-lmtp@.socket"; }
listen_templates=$(unit_value ListenStream)
listen_template=$(echo "$listen_templates" | head -1)
user_socket_template=$(echo "$listen_templates" | sed -n 2p)
[ "$user_socket_template" = "/run/notmuch-deliver-lmtp/%i" ] || fail "the socket unit's second ListenStream is $user_socket_template"
socket_group=$(unit_value SocketGroup)
socket_mode=$(unit_value SocketMode)
[ "$(unit_value SocketUser)" = %i ] && [ "$(unit_value Accept)" = no ] || fail "the socket unit's SocketUser or Accept changed"
case $listen_template in /var/spool/postfix/private/*%i) ;; *) fail "ListenStream=$listen_template is not in postfix's private/" ;; esac

# A local user with notmuch set up as a notmuch user would.
. "$(dirname "$0")/notmuch-user.sh"

# Virtual mailboxes owned by vmail: two mail roots, for two instances.
id vmail >/dev/null 2>&1 || useradd -r -s /usr/sbin/nologin -d /srv/vmail vmail
rm -rf /srv/vmail /srv/vmail-b
install -d -o vmail -g vmail -m 0700 /srv/vmail /srv/vmail-b

postfix stop >/dev/null 2>&1 || true
postsuper -d ALL >/dev/null 2>&1 || true   # no mail left queued by an earlier run
cp -p /etc/postfix/main.cf /etc/postfix/master.cf "$scratch/"

# start_server NAME USER SERVER-OPTIONS...: socket activation as systemd
# does it, through the unit's socket when there is no --listen; the pid
# stays the server's (exec), so LISTEN_PID is right.
start_server() {
  local name=$1 user=$2; shift 2
  local log=$scratch/$name.log
  install -o "$user" -m 0600 /dev/null "$log"
  local sockets=""
  case " $* " in *" --listen "*) ;; *) sockets="${listen_template//%i/$user} ${user_socket_template//%i/$user}" ;; esac
  python3 - "$sockets" "$user" "$socket_group" "$socket_mode" "$bin" lmtp --log "$log" "$@" \
    2>"$scratch/$name.stderr" <<'PY' &
import grp, os, pwd, socket, sys
paths, user, group, mode = sys.argv[1:5]
account = pwd.getpwnam(user)
env = {"PATH": "/usr/bin:/bin", "HOME": account.pw_dir, "USER": user, "LOGNAME": user}
listeners = []
for path in paths.split():
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)   # systemd's DirectoryMode
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chown(path, account.pw_uid, grp.getgrnam(group).gr_gid)
    os.chmod(path, int(mode, 8))
    listener.listen(128)
    listeners.append(listener)
if listeners:
    # fds 3, 4, ... as systemd passes them: out of the way first, then in place.
    moved = [os.dup2(l.fileno(), 100 + i, inheritable=False) for i, l in enumerate(listeners)]
    for i, fd in enumerate(moved):
        os.dup2(fd, 3 + i)
        os.close(fd)
    env.update(LISTEN_FDS=str(len(listeners)), LISTEN_PID=str(os.getpid()))
os.execve("/usr/bin/setpriv", ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
          "--init-groups"] + sys.argv[5:], env)
PY
  servers+=($!)
  eval "pid_$name=$!"
}

start_server personal ndtest
start_server virtual vmail --mail-root '/srv/vmail/%d/%u'
start_server second vmail --mail-root '/srv/vmail-b/%d/%u' --listen 127.0.0.1:24240
# The servers start in the background: their sockets up before postfix is
# pointed at them (a fixed pause was too short on a loaded machine).
for _ in $(seq 1 200); do
  [ -S "${listen_template//%i/ndtest}" ] && [ -S "${listen_template//%i/vmail}" ] \
    && (exec 3<>/dev/tcp/127.0.0.1/24240) 2>/dev/null && break
  sleep 0.1
done
for name in personal virtual second; do
  pid_var=pid_$name
  kill -0 "${!pid_var}" 2>/dev/null || fail "the $name server did not start: $(cat "$scratch/$name.stderr")"
done
[ "$(stat -c '%U %G %a' /var/spool/postfix/private/notmuch-deliver-ndtest)" = "ndtest $socket_group ${socket_mode#0}" ] \
  || fail "socket: $(stat -c '%U %G %a' /var/spool/postfix/private/notmuch-deliver-ndtest)"

cat > /etc/postfix/nd-lmtp-transport <<'MAP'
a.example lmtp:unix:private/notmuch-deliver-vmail
b.example lmtp:inet:127.0.0.1:24240
MAP
postmap /etc/postfix/nd-lmtp-transport
postconf -e "inet_interfaces = loopback-only" "inet_protocols = ipv4" "myhostname = mx.test.example" \
  "mydestination = test.example, localhost" "mynetworks = 127.0.0.0/8" "recipient_delimiter = +" \
  "mailbox_command =" "mailbox_transport = lmtp:unix:private/notmuch-deliver-ndtest" \
  "virtual_mailbox_domains = virt.example, a.example, b.example" \
  "virtual_transport = lmtp:unix:private/notmuch-deliver-vmail" \
  "transport_maps = hash:/etc/postfix/nd-lmtp-transport" \
  "smtputf8_enable = no" "maillog_file = /var/log/postfix-lmtp-test.log" \
  "compatibility_level = 3.6" "alias_maps = hash:/etc/aliases" "alias_database = hash:/etc/aliases"
postconf -M -e "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
newaliases
: > /var/log/postfix-lmtp-test.log   # this run's log only
postfix start >/dev/null 2>&1

send() { # send FROM MESSAGE-ID SUBJECT TO...
  python3 - "$@" <<'PY'
import smtplib, sys
sender, msgid, subject, *rcpts = sys.argv[1:]
body = (f"From: Sender <{sender}>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n"
        "\r\nHello.\r\n")
with smtplib.SMTP("127.0.0.1", 25, timeout=30) as smtp:
    smtp.sendmail(sender, rcpts, body)
PY
}
as_user() { su ndtest -c "$*"; }
view() { # view MAILBOX notmuch-args...
  local box=$1; shift
  printf '[database]\npath=%s\n' "$box" > "$scratch/view.conf"
  chmod 0644 "$scratch/view.conf"
  setpriv --reuid=vmail --regid=vmail --init-groups env HOME=/srv/vmail NOTMUCH_CONFIG="$scratch/view.conf" notmuch "$@"
}
wait_for() { # wait_for COMMAND EXPECTED
  for _ in $(seq 1 60); do
    [ "$(eval "$1" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.5
  done
  echo "last: $(eval "$1" 2>&1)"; tail -20 /var/log/postfix-lmtp-test.log; return 1
}
wait_log() { # wait_log GREP-PATTERN: until postfix's log has a matching line
  for _ in $(seq 1 60); do
    grep -q "$1" /var/log/postfix-lmtp-test.log && return 0
    sleep 0.5
  done
  tail -20 /var/log/postfix-lmtp-test.log; return 1
}
no_bounce() { # a deferral must never turn into a bounce
  if grep -q 'status=bounced' /var/log/postfix-lmtp-test.log; then
    fail "postfix bounced: $(grep 'status=bounced' /var/log/postfix-lmtp-test.log)"
  fi
}
deferred() { # deferred GREP-PATTERN WHAT: postfix logged the deferral, and bounced nothing
  wait_log "$1" || fail "$2 not deferred (no log line matching $1)"
  no_bounce
}
nothing_new() { # nothing_new NOTMUCH WHERE: notmuch new after the deliveries has nothing to do
  [ "$($1 new)" = "No new mail." ] || fail "notmuch new found something in $2"
  pass "notmuch new finds nothing new in $2"
}
redelivered() { # redelivered NEW-DIR NOTMUCH QUERY: new/ writable again and the queue flushed, the deferred copy arrives, as one file
  chmod 0700 "$1"
  postqueue -f
  wait_for "$2 count --output=files $3" 1 || fail "$3 did not arrive in $1/.. (once) after the fix and postqueue -f"
}

# 1. a local user through mailbox_transport
send sender@remote.example plain@remote.example "plain" ndtest@test.example
wait_for "as_user notmuch count id:plain@remote.example" 1 || fail "plain message not indexed"
tags=$(as_user notmuch search --output=tags id:plain@remote.example | tr '\n' ' ')
[ "$tags" = "fromtest inbox unread " ] || fail "plain message tags: $tags"
file=$(as_user notmuch search --output=files id:plain@remote.example)
grep -q $'\r' "$file" && fail "the stored file has CRLF line ends"
grep -q '^Return-Path: <sender@remote.example>' "$file" || fail "no Return-Path"
grep -q '^Delivered-To: ndtest@test.example' "$file" || fail "no Delivered-To"
grep -q 'to=<ndtest@test.example>, relay=[^,]*\[private/notmuch-deliver-ndtest\],.*status=sent (250 2.0.0' /var/log/postfix-lmtp-test.log \
  || fail "postfix did not log the LMTP delivery: $(grep status= /var/log/postfix-lmtp-test.log)"
grep -q 'session=[a-z0-9]* rcpt=<ndtest@test.example> delivered id=<plain@remote.example>' "$scratch/personal.log" \
  || fail "no delivery line in the server's log: $(cat "$scratch/personal.log")"
# The unit's second socket: the user's own programs (fetchmail) reach the same server.
su ndtest -c "python3 -c \"import smtplib; smtplib.LMTP('/run/notmuch-deliver-lmtp/ndtest', timeout=30).sendmail('sender@remote.example', ['ndtest@localhost'], 'From: x@remote.example\\r\\nSubject: own\\r\\nMessage-ID: <own@remote.example>\\r\\n\\r\\nHi.\\r\\n')\"" \
  || fail "ndtest cannot deliver through /run/notmuch-deliver-lmtp/ndtest"
[ "$(as_user notmuch count id:own@remote.example)" = 1 ] || fail "the message through the user's socket is not indexed"
pass "mailbox_transport over LMTP: indexed, tagged by the rules, LF line ends, Return-Path and Delivered-To, logged by both; the unit's /run socket serves the user"

send sender@remote.example shop@remote.example "order" ndtest+shop@test.example
wait_for "as_user notmuch count id:shop@remote.example and folder:shop and tag:shopping" 1 \
  || fail "+extension did not reach the rules: $(grep 'shop@remote' "$scratch/personal.log")"
pass "mailbox_transport: +shop extension reached the rules (folder shop, tag shopping)"

# 2. an unwritable maildir defers, and the mail arrives once fixed
chmod 0500 "$home/mail/new"
send sender@remote.example deferred@remote.example "deferred" ndtest@test.example
deferred 'to=<ndtest@test.example>, relay=[^,]*\[private/notmuch-deliver-ndtest\],.*status=deferred (host [^ ]*\[private/notmuch-deliver-ndtest\] said: 451 4' \
  "the message to the unwritable maildir"
[ "$(as_user notmuch count id:deferred@remote.example)" = 0 ] || fail "indexed despite the unwritable maildir"
[ -z "$(ls -A "$home/mail/tmp")" ] || fail "left in tmp/: $(ls -A "$home/mail/tmp")"
pass "unwritable maildir: 451, postfix deferred, no bounce, nothing left in tmp/"
redelivered "$home/mail/new" "as_user notmuch" id:deferred@remote.example
pass "after the fix and postqueue -f the deferred mail arrived, once"

nothing_new "as_user notmuch" "ndtest's mailbox"

# 3. virtual mailboxes through virtual_transport, as vmail
send sender@remote.example va@remote.example "to alice" alice@virt.example
send sender@remote.example vb@remote.example "to bob" bob@virt.example
wait_for "view /srv/vmail/virt.example/alice count '*'" 1 || fail "alice's virtual mailbox"
wait_for "view /srv/vmail/virt.example/bob count '*'" 1 || fail "bob's virtual mailbox"
[ "$(stat -c %U /srv/vmail/virt.example/bob/.notmuch/xapian)" = vmail ] || fail "database not owned by vmail"
[ "$(view /srv/vmail/virt.example/bob count id:va@remote.example)" = 0 ] || fail "alice's mail in bob's mailbox"
[ "$(view /srv/vmail/virt.example/alice search --output=tags id:va@remote.example | tr '\n' ' ')" = "inbox unread " ] \
  || fail "alice's tags"
pass "virtual_transport over LMTP: one database per address, created by vmail on first delivery"

# One message for three addresses, in one LMTP transaction: bob's maildir unwritable.
chmod 0500 /srv/vmail/virt.example/bob/new
send sender@remote.example three@remote.example "three" alice@virt.example bob@virt.example carol@virt.example
wait_for "view /srv/vmail/virt.example/carol count id:three@remote.example" 1 || fail "carol did not get the message"
deferred 'to=<bob@virt.example>.*status=deferred.*said: 451 4' "bob's copy"
[ "$(view /srv/vmail/virt.example/alice count id:three@remote.example)" = 1 ] || fail "alice did not get the message"
[ "$(view /srv/vmail/virt.example/bob count id:three@remote.example)" = 0 ] || fail "bob got the message despite new/ 0500"
session=$(sed -n 's/.*session=\([a-z0-9]*\) rcpt=<carol@virt.example> delivered id=<three@remote.example>.*/\1/p' "$scratch/virtual.log")
[ -n "$session" ] || fail "carol's delivery not logged"
grep -q "session=$session rcpt=<alice@virt.example> delivered id=<three@remote.example>" "$scratch/virtual.log" \
  && grep -q "session=$session rcpt=<bob@virt.example> failed outcome=deferred" "$scratch/virtual.log" \
  || fail "want one log line per recipient in one session: $(grep "session=$session" "$scratch/virtual.log")"
no_bounce
redelivered /srv/vmail/virt.example/bob/new "view /srv/vmail/virt.example/bob" id:three@remote.example
[ "$(view /srv/vmail/virt.example/alice count --output=files id:three@remote.example)" = 1 ] || fail "alice got the message twice"
pass "one transaction, three recipients: alice and carol 250, bob (unwritable) deferred; bob's arrives after the fix, nobody's twice"

nothing_new "view /srv/vmail/virt.example/alice" "alice's virtual mailbox"

# 4. transport_maps: two domains, two instances, two mail roots
routes=("a.example /srv/vmail /srv/vmail-b" "b.example /srv/vmail-b /srv/vmail")   # domain, its mail root, the other's
for route in "${routes[@]}"; do
  read -r domain root _ <<< "$route"
  send sender@remote.example "t-$domain@remote.example" "to $domain" "user@$domain"
done
for route in "${routes[@]}"; do
  read -r domain root other <<< "$route"
  wait_for "view $root/$domain/user count id:t-$domain@remote.example" 1 || fail "$domain's mail not in $root"
  [ ! -e "$other/$domain" ] || fail "$domain's mail reached the other instance's mail root $other"
done
grep -q 'rcpt=<user@b.example> delivered' "$scratch/second.log" || fail "the second instance did not log b.example's delivery"
grep -q 'user@b.example' "$scratch/virtual.log" && fail "the first instance saw b.example's mail"
grep -q 'to=<user@b.example>, relay=127.0.0.1\[127.0.0.1\]:24240.*status=sent' /var/log/postfix-lmtp-test.log \
  || fail "postfix did not log b.example's delivery through 127.0.0.1:24240"
pass "transport_maps: a.example to the unix-socket instance (/srv/vmail), b.example to the 127.0.0.1:24240 one (/srv/vmail-b), each only in its own"

# 5. SIGTERM: each server finishes and exits 0 (postfix holds cached connections).
for name in personal virtual second; do
  pid_var=pid_$name
  kill -TERM "${!pid_var}"
  status=0
  wait "${!pid_var}" || status=$?
  [ "$status" = 0 ] || fail "the $name server exited $status after SIGTERM: $(cat "$scratch/$name.stderr")"
done
servers=()
pass "SIGTERM: the three servers exited 0"

echo "postfix LMTP end-to-end: all passed"
