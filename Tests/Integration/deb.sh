#!/usr/bin/env bash
# The Debian package as a user gets it: `apt-get install ./notmuch-deliver_*.deb`,
# then `--version`, the LMTP server's systemd templates, the man page, bash
# completion loaded by bash-completion from where the package put it, a
# delivery with the installed
# /usr/bin/notmuch-deliver into a throwaway notmuch database; then
# `apt-get purge` leaves none of the package's files behind.
# Needs root (apt-get) and `make deb deps-e2e` (man-db, bash-completion).
# Exit status 77 (automake's "skipped"): it could not run here, which is not a pass.
set -euo pipefail
deb=${1:?usage: deb.sh PATH/TO/notmuch-deliver_VERSION_ARCH.deb}
if [ "$(id -u)" != 0 ]; then echo "SKIPPED: Debian package test (needs root: apt-get install)"; exit 77; fi

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

[ -f "$deb" ] || fail "no package $deb: run make deb"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' notmuch-deliver 2>/dev/null)" = installed ]; }
apt() { DEBIAN_FRONTEND=noninteractive apt-get "$@" -y -qq --no-install-recommends >/dev/null 2>"$work/apt.err" || { cat "$work/apt.err"; return 1; }; }

# From a clean state: a package left by an earlier run is removed first.
if installed; then apt purge notmuch-deliver || fail "apt-get purge of an earlier notmuch-deliver"; fi
apt install "$(realpath "$deb")" || fail "apt-get install $deb"
installed || fail "notmuch-deliver is not installed after apt-get install"
dpkg -L notmuch-deliver > "$work/files"
bin=/usr/bin/notmuch-deliver
version=$(dpkg-deb -f "$deb" Version)
[ "$("$bin" --version)" = "$version" ] || fail "$bin --version printed '$("$bin" --version)', the package is $version"
pass "apt-get install: $bin --version prints $version; $(wc -l < "$work/files") paths"

# The LMTP server's systemd templates, naming the packaged binary, and sound
# for an instance (when systemd-analyze is there).
for unit in notmuch-deliver-lmtp@.socket notmuch-deliver-lmtp@.service; do
  grep -qx "/usr/lib/systemd/system/$unit" "$work/files" || fail "the package has no /usr/lib/systemd/system/$unit"
done
grep -qx 'ExecStart=/usr/bin/notmuch-deliver lmtp $LMTP_OPTIONS' /usr/lib/systemd/system/notmuch-deliver-lmtp@.service \
  || fail "the packaged service does not run /usr/bin/notmuch-deliver lmtp"
if command -v systemd-analyze >/dev/null; then
  mkdir "$work/units"
  ln -s /usr/lib/systemd/system/notmuch-deliver-lmtp@.socket "$work/units/notmuch-deliver-lmtp@alice.socket"
  ln -s /usr/lib/systemd/system/notmuch-deliver-lmtp@.service "$work/units/notmuch-deliver-lmtp@alice.service"
  out=$(systemd-analyze verify --man=no "$work/units/notmuch-deliver-lmtp@alice.socket" "$work/units/notmuch-deliver-lmtp@alice.service" 2>&1) \
    && [ -z "$out" ] || fail "systemd-analyze verify on the packaged units: $out"
fi
pass "systemd templates in /usr/lib/systemd/system, ExecStart=/usr/bin/notmuch-deliver lmtp"

# The watcher's user unit, naming the packaged binary, and sound.
grep -qx "/usr/lib/systemd/user/notmuch-deliver-watch.service" "$work/files" \
  || fail "the package has no /usr/lib/systemd/user/notmuch-deliver-watch.service"
grep -qx 'ExecStart=/usr/bin/notmuch-deliver watch $WATCH_OPTIONS' /usr/lib/systemd/user/notmuch-deliver-watch.service \
  || fail "the packaged user unit does not run /usr/bin/notmuch-deliver watch"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify --man=no /usr/lib/systemd/user/notmuch-deliver-watch.service 2>&1) \
    && [ -z "$out" ] || fail "systemd-analyze verify on the packaged user unit: $out"
fi
pass "user unit in /usr/lib/systemd/user, ExecStart=/usr/bin/notmuch-deliver watch"

man=$(man -w notmuch-deliver) || fail "man -w notmuch-deliver finds no page"
[ "$man" = /usr/share/man/man1/notmuch-deliver.1.gz ] || fail "man -w notmuch-deliver gives $man"
man notmuch-deliver 2>/dev/null | grep -q -- '--version' || fail "man notmuch-deliver does not show --version"
header=$(zcat "$man" | sed -n 1p)
[[ $header == *"notmuch-deliver $version"* ]] || fail "the man page's header does not name version $version: $header"
pass "man notmuch-deliver: $man, version $version"

# The licence, and the changelog made from NEWS.md for this version.
doc=/usr/share/doc/notmuch-deliver
grep -q '^License: GPL-3+$' $doc/copyright || fail "$doc/copyright does not license the project GPL-3+"
first=$(zcat $doc/changelog.gz | sed -n 1p)
[[ $first == "notmuch-deliver ($version)"* ]] || fail "$doc/changelog.gz starts with '$first', not version $version"
[ -f $doc/NEWS.md ] || fail "$doc/NEWS.md is missing"
pass "copyright GPL-3+, changelog and NEWS.md for $version"

# bash-completion finds the script by the command's name, as on a Tab press.
# (swift-argument-parser's script completes the default subcommand's
# options only after its name: `notmuch-deliver deliver --fol`.)
complete_line() {
  bash -c '
    source /usr/share/bash-completion/bash_completion
    _completion_loader notmuch-deliver
    function=$(complete -p notmuch-deliver | sed "s/.* -F \([^ ]*\) .*/\1/")
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    "$function" notmuch-deliver "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf "%s\n" "${COMPREPLY[@]}"' complete_line "$@"
}
[ "$(complete_line notmuch-deliver che)" = check-rules ] \
  || fail "bash completes 'notmuch-deliver che' to '$(complete_line notmuch-deliver che)', not check-rules"
[ "$(complete_line notmuch-deliver deliver --fol)" = --folder ] \
  || fail "bash completes 'notmuch-deliver deliver --fol' to '$(complete_line notmuch-deliver deliver --fol)', not --folder"
for file in /usr/share/zsh/vendor-completions/_notmuch-deliver /usr/share/fish/vendor_completions.d/notmuch-deliver.fish; do
  [ -s "$file" ] || fail "no $file"
done
pass "bash-completion loads the completion: check-rules, --folder; zsh and fish completions installed"

# A delivery with the installed binary into a throwaway database.
mkdir "$work/mail"
cat > "$work/config" <<CONF
[database]
path=$work/mail
[new]
tags=unread;inbox;
CONF
export NOTMUCH_CONFIG=$work/config
notmuch new >/dev/null
printf 'From: Sender <sender@example.org>\nDate: Sun, 29 Nov 2026 12:00:00 +0000\nTo: user@example.org\nSubject: installed from the package\nMessage-ID: <deb-test@example.org>\n\nHello.\n' \
  | "$bin" --tag packaged || fail "the installed $bin did not deliver (exit status $?)"
found=$(notmuch search --output=summary 'id:deb-test@example.org and tag:packaged and tag:inbox')
[ -n "$found" ] || fail "notmuch search does not find the delivered message with its tags"
pass "delivered with $bin: $found"

apt purge notmuch-deliver || fail "apt-get purge notmuch-deliver"
! installed || fail "notmuch-deliver is still installed after apt-get purge"
# Every file is gone; a directory may stay only if another package owns it or it is not empty.
while read -r path; do
  [ -e "$path" ] || continue
  if [ -d "$path" ] && { dpkg -S "$path" >/dev/null 2>&1 || [ -n "$(ls -A "$path")" ]; }; then continue; fi
  fail "left behind after apt-get purge: $path"
done < "$work/files"
pass "apt-get purge: none of the $(wc -l < "$work/files") paths left behind"
