#!/bin/sh
# Delivers a few sample messages into a throwaway maildir and notmuch
# database under ./demo, then shows what notmuch indexed.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(pwd)/demo
rm -rf "$demo"
mkdir -p "$demo/mail"
cat > "$demo/notmuch-config" <<CONF
[database]
mail_root=$demo/mail
path=$demo/mail
[new]
tags=unread;inbox;
[maildir]
synchronize_flags=true
CONF
export NOTMUCH_CONFIG="$demo/notmuch-config"
notmuch new --quiet

deliver() { echo "\$ notmuch-deliver $*"; "$bin" "$@"; }

deliver <<'MSG'
From alice@example.org Mon Nov 24 09:00:00 2025
Return-Path: <alice@example.org>
From: Alice <alice@example.org>
To: Bob <bob@example.org>
Subject: Lunch on Friday?
Date: Mon, 24 Nov 2025 09:00:00 +0000
Message-ID: <lunch@example.org>

Shall we try the new place?
MSG

deliver --tag work +project/apollo <<'MSG'
From: Carol <carol@example.com>
To: Bob <bob@example.org>
Subject: Apollo status report
Date: Mon, 24 Nov 2025 09:05:00 +0000
Message-ID: <apollo-1@example.com>

All green this week.
MSG

deliver +flagged -unread <<'MSG'
From: Bank <alerts@bank.example>
To: Bob <bob@example.org>
Subject: Your statement is ready
Date: Mon, 24 Nov 2025 09:10:00 +0000
Message-ID: <statement@bank.example>

Log in to read it.
MSG

deliver --folder=Sent --create-folder --tag sent -inbox -unread <<'MSG'
From: Bob <bob@example.org>
To: Alice <alice@example.org>
Subject: Re: Lunch on Friday?
Date: Mon, 24 Nov 2025 09:15:00 +0000
Message-ID: <lunch-reply@example.org>
In-Reply-To: <lunch@example.org>
References: <lunch@example.org>

Yes, noon.
MSG

echo
echo "\$ notmuch search '*'"
notmuch search '*'
echo
echo "\$ notmuch search --output=files '*'"
notmuch search --output=files '*' | sed "s|$demo/||"
echo
echo "\$ notmuch new   # nothing left for it to find"
notmuch new
