# Sourced by the postfix tests: the local user `ndtest` with notmuch set up
# as a notmuch user would (a config, an empty database, rules using the
# +extension and the sender). Sets $home to the user's home directory.
id ndtest >/dev/null 2>&1 || useradd -m -s /bin/sh ndtest
home=$(getent passwd ndtest | cut -d: -f6)
rm -rf "$home/mail" "$home/.notmuch-config" "$home/rules"
su ndtest -c "mkdir -p $home/mail && cat > $home/.notmuch-config" <<CONF
[database]
path=$home/mail
[new]
tags=unread;inbox;
[deliver]
rules=$home/rules
CONF
su ndtest -c "cat > $home/rules" <<'RULES'
+shopping folder:shop -- extension:shop
+fromtest -- from:sender@remote.example
RULES
su ndtest -c "notmuch new --quiet"
