#!/usr/bin/env bash
# Our maildirsize against Dovecot's (`quota = maildir:User quota`, which
# follows the Maildir++ convention): deliveries with a quota into a
# throwaway mailbox (top level and a .Sent folder), then
# - `doveadm quota get` reads the same message count and limits from our file;
# - `doveadm quota recalc` recounts the mailbox and rewrites the file, and its
#   figures equal ours, to the byte;
# - we then read Dovecot's file back and refuse at its limit.
# Needs root (Dovecot will not open mail as root, so everything runs as
# nobody) and dovecot-core (make deps-e2e). Exit status 77: skipped.
set -euo pipefail
bin=$(realpath "${1:?usage: quota.sh PATH/TO/notmuch-deliver}")
if [ "$(id -u)" != 0 ]; then echo "SKIPPED: quota test against Dovecot (needs root to run as nobody)"; exit 77; fi
command -v doveadm >/dev/null || { echo "SKIPPED: quota test (no doveadm: make deps-e2e)"; exit 77; }

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
mail=$work/mail
mkdir -p "$work/home" "$work/run" "$mail"
uid=$(id -u nobody); gid=$(id -g nobody)
cat > "$work/notmuch-config" <<EOF
[database]
path=$mail
[new]
tags=inbox;
ignore=maildirsize
[deliver]
quota=1M,100C
EOF
cat > "$work/dovecot.conf" <<EOF
base_dir = $work/run
state_dir = $work/run
log_path = $work/dovecot.log
ssl = no
protocols =
mail_location = maildir:$mail
mail_uid = $uid
mail_gid = $gid
first_valid_uid = $uid
first_valid_gid = $gid
mail_plugins = quota
plugin {
  quota = maildir:User quota
}
EOF
chown -R nobody: "$work"
as_nobody() { runuser -u nobody -- env NOTMUCH_CONFIG="$work/notmuch-config" HOME="$work/home" USER=nobody "$@"; }
doveadm_() { (cd "$work" && as_nobody doveadm -c "$work/dovecot.conf" "$@"); }

as_nobody notmuch new --quiet
for i in 1 2 3 4 5 6; do
  folder=(); [ "$i" -gt 4 ] && folder=(--folder .Sent --create-folder)
  printf 'From: a@example.org\nTo: b@example.org\nSubject: %s\nMessage-ID: <q%s@example.org>\n\n%0*d\n' \
    "$i" "$i" $((i * 700)) 0 | as_nobody "$bin" "${folder[@]}" || fail "delivery $i"
done
json=$(as_nobody "$bin" quota --json)
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$json"; }
bytes=$(field bytes); messages=$(field messages)
[ "$messages" = 6 ] || fail "we count $messages messages, not 6: $json"
pass "6 deliveries: $bytes bytes in $messages messages by our count"

# Dovecot's report: MESSAGE value and limit exactly, STORAGE in KiB.
report=$(doveadm_ quota get) || fail "doveadm quota get: $(cat "$work/dovecot.log" 2>/dev/null)"
read -r dmsg dmsglimit <<<"$(awk '$3 == "MESSAGE" { print $4, $5 }' <<<"$report")"
read -r dkib dkiblimit <<<"$(awk '$3 == "STORAGE" { print $4, $5 }' <<<"$report")"
[ "$dmsg" = 6 ] && [ "$dmsglimit" = 100 ] || fail "doveadm reads $dmsg of $dmsglimit messages: $report"
[ "$dkiblimit" = 1024 ] || fail "doveadm reads a storage limit of $dkiblimit KiB, not 1024: $report"
[ $((dkib * 1024)) -ge "$bytes" ] && [ $(((dkib - 1) * 1024)) -lt "$bytes" ] \
  || fail "doveadm reads $dkib KiB, we have $bytes bytes: $report"
pass "doveadm quota get reads our maildirsize: $dmsg/$dmsglimit messages, $dkib/$dkiblimit KiB"

# Dovecot recounts and rewrites the file: the same figures as ours.
lines_before=$(wc -l < "$mail/maildirsize")
doveadm_ quota recalc || fail "doveadm quota recalc"
# Rewritten by Dovecot: its limit line and one usage line, where ours had one per delivery.
[ "$lines_before" -gt 2 ] && [ "$(wc -l < "$mail/maildirsize")" = 2 ] \
  || fail "doveadm quota recalc did not rewrite maildirsize: $(cat "$mail/maildirsize")"
read -r rbytes rmessages <<<"$(awk 'NR > 1 { b += $1; m += $2 } END { print b, m }' "$mail/maildirsize")"
[ "$rbytes" = "$bytes" ] && [ "$rmessages" = "$messages" ] \
  || fail "Dovecot counts $rbytes bytes in $rmessages messages, we $bytes in $messages: $(cat "$mail/maildirsize")"
pass "doveadm quota recalc counts the same: $rbytes bytes in $rmessages messages"

# Dovecot's file read back: a limit of 7 messages lets one more in, then 75.
sed -i '1s/.*/1048576S,7C/' "$mail/maildirsize"
sed -i '/^quota=/d' "$work/notmuch-config"
printf 'From: a@example.org\nSubject: 7\n\nseven\n' | as_nobody "$bin" || fail "the 7th message was refused"
status=0; printf 'From: a@example.org\nSubject: 8\n\neight\n' | as_nobody "$bin" 2>/dev/null || status=$?
[ "$status" = 75 ] || fail "the 8th message over Dovecot's 7C limit exited $status, not 75"
pass "Dovecot's maildirsize read back: its 7-message limit refuses the 8th with 75"
