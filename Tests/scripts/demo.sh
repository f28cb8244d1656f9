#!/bin/sh
# Shows what notmuch-deliver does that `notmuch insert` cannot: delivery
# rules, `explain` and mbox import, in a throwaway maildir and notmuch
# database under ./demo (nothing outside it is touched). Every step is
# checked with `notmuch count`; a step that does not do what it says makes
# the demo fail, so `make demo` is also a test.
# Usage: sh Tests/scripts/demo.sh PATH-TO-notmuch-deliver
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(pwd)/demo
rm -rf "$demo"
mkdir -p "$demo/mail" "$demo/bin"
ln -s "$bin" "$demo/bin/notmuch-deliver"
PATH=$demo/bin:$PATH
cat > "$demo/notmuch-config" <<CONF
[database]
mail_root=$demo/mail
path=$demo/mail
[new]
tags=unread;inbox;
[maildir]
synchronize_flags=true
[deliver]
rules=$demo/rules
CONF
export NOTMUCH_CONFIG="$demo/notmuch-config"
notmuch new --quiet
cd "$demo"

# The commands, as a user would type them, each after a comment.
say() { echo "# $*"; }
run() { echo "\$ $*"; eval "$*"; }
check() {
    n=$(notmuch count "$1")
    [ "$n" = "$2" ] || { echo "demo: FAILED: notmuch count '$1' gives $n, expected $2" >&2; exit 1; }
    checks=$((checks + 1))
}
checks=0

cat > rules <<'RULES'
# SpamAssassin said yes: tag it, keep it out of the inbox, file it in Junk/.
+spam -inbox folder:Junk stop -- header:X-Spam-Flag~/^yes$/
# A mailing list gets lists/NAME from its List-Id.
+lists/$1 -- header:List-Id~/<([^.>]+)\./
# A reply in a thread you muted stays out of the inbox.
-inbox -- thread:{tag:muted}
RULES

msg() { # FILE MESSAGE-ID TIME SUBJECT [HEADER...]
    file=$1 id=$2 time=$3 subject=$4
    shift 4
    {
        echo "From: Sender <sender@example.net>"
        echo "To: Bob <bob@example.org>"
        echo "Subject: $subject"
        echo "Date: Mon, 24 Nov 2025 $time:00 +0000"
        echo "Message-ID: <$id>"
        for header in "$@"; do echo "$header"; done
        echo
        echo "Hello."
    } > "$file"
}
msg spam.eml won@bulk.example.net 09:00 "You have won" "X-Spam-Flag: YES"
msg list.eml release@example.org 09:05 "Release 2.0 is out" "List-Id: Developer discussion <dev.lists.example.org>"
msg bikeshed.eml paint@example.org 09:10 "What colour for the bike shed?"
msg reply.eml paint-2@example.org 09:15 "Re: What colour for the bike shed?" \
    "In-Reply-To: <paint@example.org>" "References: <paint@example.org>"
cat > old.mbox <<'MBOX'
From carol@example.com Mon Nov 10 10:00:00 2025
From: Carol <carol@example.com>
To: Bob <bob@example.org>
Subject: Trip photos
Date: Mon, 10 Nov 2025 10:00:00 +0000
Message-ID: <photos@example.com>
Status: RO

Here they are.

From dave@example.com Tue Nov 11 11:00:00 2025
From: Dave <dave@example.com>
To: Bob <bob@example.org>
Subject: Contract to sign
Date: Tue, 11 Nov 2025 11:00:00 +0000
Message-ID: <contract@example.com>
Status: O
X-Status: F

Please sign by Friday.
MBOX

say "A throwaway maildir and notmuch database in ./demo; its config names these rules ([deliver] rules=)."
run "cat rules"
echo
say "explain: which rules a message matches and what they would do; nothing is stored."
run "notmuch-deliver explain < spam.eml"
check id:won@bulk.example.net 0
say "notmuch insert cannot act on X-Spam-Flag; this one arrives tagged spam, out of the inbox, in Junk/."
run "notmuch-deliver < spam.eml"
check "id:won@bulk.example.net and tag:spam and not tag:inbox and folder:Junk" 1
say "Nor List-Id: the tag lists/dev comes from it, in the transaction that indexes the message."
run "notmuch-deliver < list.eml"
check "id:release@example.org and tag:lists/dev and tag:inbox" 1
say "Mute a thread; a reply in it then stays out of the inbox (notmuch insert would put it there)."
run "notmuch-deliver < bikeshed.eml"
run "notmuch tag +muted -inbox -- thread:{id:paint@example.org}"
run "notmuch-deliver < reply.eml"
check "id:paint-2@example.org and not tag:inbox" 1
check "thread:{id:paint@example.org} and not tag:inbox" 2
say "notmuch insert takes one message; import takes an mbox, Status: RO/X-Status: F becoming tags."
run "notmuch-deliver import --folder Archive --create-folder --tag archive --remove-tag inbox old.mbox"
check "id:photos@example.com and not tag:unread and tag:archive and folder:Archive" 1
check "id:contract@example.com and tag:flagged and tag:unread and folder:Archive" 1
echo
say "Tags and folders were in place at once: no post-new hook, no later notmuch tag pass."
run "notmuch search --sort=oldest-first '*'"
run "notmuch search --sort=oldest-first --output=files '*' | sed \"s|^\$PWD/mail/||\""
check "*" 6
say "So the inbox holds only the list message."
run "notmuch search tag:inbox"
check tag:inbox 1
say "A sync tool (mbsync, offlineimap) writes files instead: watch --once indexes them as notmuch new"
say "would (new.tags, flags as tags: S means read) and applies the same rules; 'watch' keeps doing it (inotify)."
mkdir -p mail/work/cur mail/work/new mail/work/tmp
msg "mail/work/cur/1764000000.M1P1.host:2,S" synced@example.org 09:20 "Release 2.1 is out" \
    "List-Id: Developer discussion <dev.lists.example.org>"
if [ "$(id -u)" = 0 ]; then
    say "(skipped here: the watcher refuses to run as root; as a user: notmuch-deliver watch --once)"
    notmuch new --quiet
else
    run "notmuch-deliver watch --once"
    check "id:synced@example.org and tag:lists/dev and not tag:unread and folder:work" 1
fi
say "Nothing was left for notmuch new to find."
out=$(notmuch new)
echo "\$ notmuch new"
echo "$out"
[ "$out" = "No new mail." ] || { echo "demo: FAILED: notmuch new found something" >&2; exit 1; }
echo "demo: all $((checks + 1)) checks passed"
