# Turns NEWS.md into the Debian package's changelog: each
# "## VERSION (YYYY-MM-DD)" heading becomes an entry, each "- " item a
# "  * " line (its continuation lines indented to match). Run as
#   awk -v maintainer="NAME <ADDRESS>" -f news-to-changelog.awk NEWS.md
function close_entry() {
    if (version == "") return
    # Releases of one day are ordered by their place in NEWS.md (newest
    # first): each older one a minute before the one above it, from noon.
    cmd = "date -R -u -d '" date " 12:00 UTC " (same_day[date]++) " minutes ago'"
    cmd | getline stamp
    close(cmd)
    printf "\n -- %s  %s\n", maintainer, stamp
    version = ""
}
/^## / {
    close_entry()
    if (!match($0, /^## [0-9][0-9.]* \([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]\)$/)) {
        print "NEWS.md:" NR ": a release heading is \"## VERSION (YYYY-MM-DD)\"" > "/dev/stderr"
        exit 1
    }
    version = $2
    date = substr($3, 2, 10)
    if (entries++) print ""
    printf "notmuch-deliver (%s) unstable; urgency=medium\n\n", version
    next
}
version != "" && /^- / { print "  * " substr($0, 3); next }
version != "" && /^  [^ ]/ { print "  " $0; next }
END { close_entry() }
